"""atheris harness for the paris-xml adapter (run: `.venv/bin/python fuzz/paris_xml.py -runs=N`)."""

from harness import main

if __name__ == "__main__":
    main("paris-xml")
