"""atheris harness for the police adapter (run: `.venv/bin/python fuzz/police.py -runs=N`)."""

from harness import main

if __name__ == "__main__":
    main("police")
