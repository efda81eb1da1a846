"""Train DANN (Ganin & Lempitsky 2015) on a labelled source and an unlabelled target domain: the
command line of dann/train.py (`python main.py --help` explains every flag)."""
from dann.cli import one_line_errors, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

from dann.train import main, parse_args  # noqa: E402  (parse_args: what the tests read of the command line)

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    run_script(main)  # Ctrl-C outside the loop (loading, evaluating): nothing to save
