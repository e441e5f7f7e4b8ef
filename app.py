"""Launch the t2igan studio: python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth user:pass] [--device auto]
(the same as `t2igan app`)."""
import sys

from t2igan.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
