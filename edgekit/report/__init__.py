"""Reports of a run: manifest.json and the terminal matrix of ``convert``; the reports of
``check`` (and of ``convert --json/--markdown/--html``): its cases as text (cases.py), JUnit
XML (junit.py), Markdown (markdown.py), HTML (html.py), and writing them (write.py)."""
