"""atheris harness for the fhir adapter (run: `.venv/bin/python fuzz/fhir.py -runs=N`)."""

from harness import main

if __name__ == "__main__":
    main("fhir")
