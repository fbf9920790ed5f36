"""atheris harness for the paris-csv adapter (run: `.venv/bin/python fuzz/paris_csv.py -runs=N`)."""

from harness import main

if __name__ == "__main__":
    main("paris-csv")
