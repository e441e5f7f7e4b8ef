"""Launch the t2igan studio: python app.py [--host 127.0.0.1] [--port 7860] [--share] [--device auto]."""
import argparse

from t2igan.ui import build_app


def main() -> None:
    parser = argparse.ArgumentParser(description="t2igan studio (Gradio)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--device", default=None, help="auto | cuda | mps | cpu")
    args = parser.parse_args()
    build_app(device=args.device).queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, max_file_size="50mb")


if __name__ == "__main__":
    main()
