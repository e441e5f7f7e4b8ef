"""Launch the t2igan studio: python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth user:pass] [--device auto]."""
import argparse

from t2igan.ui import build_app, launch


def main() -> None:
    parser = argparse.ArgumentParser(description="t2igan studio (Gradio)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--auth", default=None, help="require a login, given as user:password")
    parser.add_argument("--device", default=None, help="auto | cuda | mps | cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per generation request (default 1)")
    args = parser.parse_args()
    auth = None
    if args.auth:
        if ":" not in args.auth:
            parser.error("--auth must look like user:password")
        auth = tuple(args.auth.split(":", 1))
    launch(build_app(device=args.device, threads=args.threads), host=args.host, port=args.port, share=args.share, auth=auth)


if __name__ == "__main__":
    main()
