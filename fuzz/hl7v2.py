"""atheris harness for the hl7v2 adapter (run: `.venv/bin/python fuzz/hl7v2.py -runs=N`)."""

from harness import main

if __name__ == "__main__":
    main("hl7v2")
