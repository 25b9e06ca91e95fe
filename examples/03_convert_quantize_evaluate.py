"""Deploy the trained model: every format, int8 and float16, each scored on held-out digits.

    python examples/03_convert_quantize_evaluate.py MODEL.keras [OUT_DIR]
"""
import sys

import edgekit
from edgekit.evaluate import evaluate
from edgekit.report.matrix import render

model = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "guide-deploy"
result = edgekit.convert(model, out, quantize="float16,int8", calibration="digits", eval_data="digits",
                         max_accuracy_drop=0.5)
print(render(result))
for row in evaluate(out, "digits"):
    print(f"{row['artifact'].rsplit('/', 1)[-1]:24} accuracy {row['accuracy']:.2f}")
assert result.exit_code == 0
