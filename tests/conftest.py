import sys
from pathlib import Path

# Make `tests.support` importable whether pytest runs from the repo root or elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
