"""Command line: ``python -m fastgru demo`` (also installed as the ``fastgru`` command)."""
import argparse
import sys


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastgru", description="fastgru: a fast CPU GRU (forward and backward) for Python.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="train a GRU on a sine wave, as the seed article does with PyTorch",
        description="Train GRU(1, 50) + Linear(50, 1) to predict the next value of a sine wave "
                    "from the 10 before it (full batch, Adam lr=0.01), print the loss every 10 "
                    "epochs, plot the predictions to OUT/sine.png, and end with one JSON line: "
                    '{"train_mse", "test_mse", "epochs", "seconds", "backend"}.')
    demo.add_argument("--out", default="fastgru-demo", metavar="DIR",
                      help="folder for sine.png (default: ./fastgru-demo)")
    demo.add_argument("--epochs", type=_non_negative_int, default=50, help="default: 50")
    demo.add_argument("--backend", choices=("auto", "numba", "cython", "numpy"), default=None,
                      help="default: $FASTGRU_BACKEND, else auto (numba, else cython, else numpy)")
    demo.add_argument("--seed", type=int, default=0, help="initial weights (default: 0)")
    demo.add_argument("--no-plot", action="store_true", help="skip sine.png")
    return parser


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from . import backends, demo  # the demo's imports only when it runs

    try:
        demo.run(out=args.out, epochs=args.epochs, backend=args.backend, seed=args.seed,
                 plot=not args.no_plot)
    except backends.BackendUnavailable as exc:
        print(f"fastgru demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
