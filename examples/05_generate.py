"""A language model on the device: a keras-hub causal LM converted into decoders with a KV
cache (generate.tflite, generate.onnx, int4 versions), each checked token by token against
Keras' own greedy generate, then generation with the TFLite decoder in a process that never
imports TensorFlow.

    python examples/05_generate.py OUT_DIR
"""
import subprocess
import sys
import textwrap
from pathlib import Path

from edgekit import convert

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edgekit-generate")
model = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "field_zoo.py"
result = convert(f"{model}:gpt2_causal_lm", out, formats="tflite,onnx", quantize="int4", onnx_quantize="int4",
                 kernels="xnnpack", force=True)
for row in result.rows:
    if row.kind == "generate":
        g = row.meta.get("generation", {})
        print(f"{row.filename}: {row.status}, {g.get('matched')}/{g.get('steps')} next tokens as Keras' greedy")

device = textwrap.dedent(f"""
    import sys
    from edgekit.runtime import load
    with load({str(out / "generate.tflite")!r}) as decoder:
        print("generated:", decoder.generate([5, 17, 42], max_new_tokens=8)["generated"])
    assert "tensorflow" not in sys.modules
""")
subprocess.run([sys.executable, "-c", device], check=True)
sys.exit(result.exit_code)
