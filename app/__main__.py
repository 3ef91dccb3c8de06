import sys

from app.cli import run

if __name__ == "__main__":
    sys.exit(run())
