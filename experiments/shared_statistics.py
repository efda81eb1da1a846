"""The ablation of French et al.'s batch statistics (RESULTS.md, 'Self-ensembling with its paper's
network'): the mnist-bn network trained as the code trains a network without batch norm, both domains
in one pass (one batch's statistics normalise both) and the mean teacher an average of the weights and
the statistics, reading in evaluation mode. main.py's flags, seeds one after another in this process.

    python -m experiments.shared_statistics --source mnist --target mnist_m --method self-ensemble \\
        --arch mnist-bn --limit 7000 --eval-every 10 --seeds 0 --out runs/experiments/short-bn-shared-self-ensemble
"""
import sys

from dann import models, stepping
from dann.cli import run_script
from dann.train import main


def share_statistics():
    """Every network made from now on is treated as one without batch norm."""
    made = models.DANN.__init__

    def __init__(self, *args, **kwargs):
        made(self, *args, **kwargs)
        self.batch_norm = False  # read by features_apart and make_step's mean teacher

    averaged = stepping.averaged_tensors
    models.DANN.__init__ = __init__
    stepping.averaged_tensors = lambda model, weights_only=False: averaged(model)  # statistics averaged too


if __name__ == "__main__":
    if any(arg.split("=")[0] in ("--jobs", "--cluster") for arg in sys.argv):
        sys.exit("error: experiments.shared_statistics trains in its own process; leave out --jobs and --cluster")
    share_statistics()
    run_script(main)
