"""Measuring a model: its accuracy on a test set, per class and as a confusion matrix (training's
evaluations and valid.py's report), how far its readings can be trusted there (dann/trust.py), and
the figures and record valid.py writes."""
import json
from pathlib import Path

import torch

from dann import outputs
from dann.common import UserError
from dann.fonts import drawable, font_for
from dann.trust import calibrated, risk_coverage, sure_at


def predictions(model, images):
    """The class the model gives each image (batched, in eval mode, no gradient)."""
    return model.predict_proba(images).argmax(1)


def accuracy(predicted, labels):
    """The share of right predictions, counted exactly (not a float32 mean)."""
    return (predicted == labels).sum().item() / len(labels)


def evaluate(model, sets):
    """Test accuracy per domain; None for an unlabelled target folder, which has no labels to score."""
    tests = {domain: sets.of(domain, "test") for domain in ("source", "target")}
    return {f"{domain}_test_acc": None if labels is None else accuracy(predictions(model, images), labels)
            for domain, (images, labels) in tests.items()}


def shown(acc):
    """An accuracy as the scripts print it, or why there is none."""
    return "none (an unlabelled target)" if acc is None else f"{acc:.4f}"


def confusion_matrix(labels, predictions, classes):
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).view(classes, classes)


def domain_report(model, images, labels, role, class_names, trust=None):
    """One test set's accuracy, per-class accuracy and confusion matrix (or, without labels, the share
    predicted as each class), and how far its readings can be trusted: the share image_annotate.py
    marks "not sure" (dann/trust.py), the accuracy of the sure and of the not-sure readings, and the
    risk-coverage curve of the calibrated chances."""
    trust = trust or {}
    chances, predicted = calibrated(model.predict_proba(images), trust.get("temperature", 1.0)).max(1)
    sure = chances >= sure_at(trust.get("unsure_below"))
    record = {"role": role, "images": len(images), "not_sure_share": 1 - sure.double().mean().item() if len(sure) else 0.0}
    n = len(class_names)
    if labels is None:
        share = (torch.bincount(predicted, minlength=n) / max(1, len(predicted))).tolist()
        return {**record, "accuracy": None, "why_no_accuracy": "an unlabelled folder", "predicted_share": share}
    cm = confusion_matrix(labels, predicted, n)
    correct = (predicted == labels).cpu()
    sure = sure.cpu()
    return {**record, "accuracy": accuracy(predicted, labels), "confusion_matrix": cm.tolist(),
            "per_class_accuracy": (cm.diag() / cm.sum(1).clamp(min=1)).tolist(),
            "sure_accuracy": correct[sure].double().mean().item() if sure.any() else None,
            "not_sure_accuracy": correct[~sure].double().mean().item() if (~sure).any() else None,
            "risk_coverage": risk_coverage(chances.cpu(), correct)}


def test_reports(model, roles, class_names, data_dir=None, allow_download=True, device="cpu", trust=None):
    """domain_report on the test split of each domain of `roles` ({domain: "source", "target" or
    "extra"}), with the model's calibration and threshold; a domain whose classes are not the model's is
    refused before anything is loaded."""
    from dann import datasets
    for name in roles:
        theirs = datasets.class_names(name)
        if theirs is not None and tuple(theirs) != tuple(class_names):
            raise UserError(f"{name} has the classes {', '.join(theirs)}; the model knows {', '.join(class_names)}")
    test_sets = datasets.load_datasets(roles, ["test"], data_dir, allow_download)
    results = {}
    for name, role in roles.items():
        images, labels = test_sets[name, "test"]
        results[name] = domain_report(model, images.to(device), None if labels is None else labels.to(device), role,
                                      class_names, trust)
    return results


def format_table(results, class_names):
    """One row per test set: accuracy, the share image_annotate.py would mark "not sure", the accuracy
    of the sure readings, and per-class accuracy (an unlabelled folder: predicted shares)."""
    width = max(5, *(len(c) for c in class_names[:12]))
    head = (f"{'domain':<12} {'role':<7} {'images':>6} {'acc':>7} {'not sure':>8} {'sure acc':>8} | "
            + " ".join(f"{c[:width]:>{width}}" for c in class_names))
    lines = [head, "-" * len(head)]
    shown = display_names(list(results))
    for name, r in results.items():
        acc, cells = ((f"{r['accuracy']:>7.4f}", r["per_class_accuracy"]) if r["accuracy"] is not None
                      else (f"{'none':>7}", r["predicted_share"]))
        note = "" if r["accuracy"] is not None else "  (no labels: share predicted as each class)"
        sure = "-" if r.get("sure_accuracy") is None else f"{r['sure_accuracy']:.4f}"
        lines.append(f"{shown[name][-12:]:<12} {r['role']:<7} {r['images']:>6} {acc} {r['not_sure_share']:>8.3f} {sure:>8} | "
                     + " ".join(f"{a:>{width}.3f}" for a in cells) + note)
    return "\n".join(lines)


def save_confusion_figure(name, result, path, class_names):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties
    font, labels, _ = drawable(tuple(class_names))
    title = f"{Path(name).name} ({result['role']}): accuracy {result['accuracy']:.4f}"
    cm = torch.tensor(result["confusion_matrix"], dtype=torch.float64)
    n = len(cm)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow((cm / cm.sum(1, keepdim=True).clamp(min=1)).numpy(), cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in zip(((i, j) for i in range(n) for j in range(n)), cm.flatten().tolist()):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(labels, fontproperties=FontProperties(fname=font))
    ax.set_yticklabels(labels, fontproperties=FontProperties(fname=font))
    title_font = font_for(title)  # a folder's own name may need another font than its classes
    ax.set_title(title if title_font else f"{result['role']}: accuracy {result['accuracy']:.4f}",
                 fontproperties=FontProperties(fname=title_font or font))
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    outputs.write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


RISK_COVERAGE = "risk_coverage.png"


def save_risk_coverage(results, path):
    """The error of the sure readings against the share kept, a curve per labelled test set, each
    with its operating point: where the model's "not sure" cuts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for (name, r), shown in zip(results.items(), display_names(list(results)).values()):
        coverage, risk = zip(*r["risk_coverage"])
        line, = ax.plot(coverage, risk, label=f"{shown} ({r['role']})")
        if r["sure_accuracy"] is not None:
            ax.plot([1 - r["not_sure_share"]], [1 - r["sure_accuracy"]], "o", color=line.get_color())
    ax.set(xlabel="share of readings marked sure (most sure first)", ylabel="error of those readings", xlim=(0, 1),
           ylim=(0, None), title="risk-coverage; dots: where \"not sure\" cuts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    outputs.write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def claim_evaluation_folder(out_dir, path, domains):
    """Before evaluating: refuse an --out-dir that is not an evaluation folder of valid.py's (or new,
    or empty), holds another checkpoint's evaluation, or a file of the user's where a figure or
    evaluation.json goes."""
    outputs.check_folder(out_dir, "evaluation", "--out-dir")
    record = out_dir / "evaluation.json"
    try:
        other = json.loads(record.read_text()).get("checkpoint") if outputs.is_ours(record) else None
    except (OSError, ValueError, AttributeError):
        other = None
    if other is not None and other != str(path.resolve()):
        raise UserError(f"{out_dir} holds the evaluation of another model ({other}); choose another --out-dir")
    outputs.refuse_foreign([record, out_dir / RISK_COVERAGE, *(out_dir / name for name in figure_names(domains).values())],
                           "choose another --out-dir")


def display_names(domains):
    """{domain: how it is shown}: its own name, or as much of its path as tells two apart."""
    return outputs.distinct_names(domains, lambda domain, parts: "/".join(Path(domain).parts[-parts:]))


def figure_names(domains):
    """{domain: its confusion figure's file name}, after display_names."""
    return {domain: f"confusion_{shown.replace('/', '-')}.png" for domain, shown in display_names(domains).items()}


def save_outputs(report, out_dir, class_names):
    """The confusion-matrix figures and evaluation.json in out_dir; returns what could not be written."""
    try:
        outputs.claim_folder(out_dir, "evaluation")
    except UserError as e:
        for result in report["domains"].values():
            result["figure"] = None
        return [str(e)]
    failures = []
    files = figure_names(list(report["domains"]))
    for name, result in report["domains"].items():
        if result["accuracy"] is None:  # no labels, no confusion matrix
            result["figure"] = None
            continue
        result["figure"] = str(out_dir / files[name])
        try:
            save_confusion_figure(name, result, Path(result["figure"]), class_names)
        except UserError as e:
            failures.append(str(e))
            result["figure"] = None
    labelled = {name: r for name, r in report["domains"].items() if r["accuracy"] is not None}
    try:
        if labelled:
            save_risk_coverage(labelled, out_dir / RISK_COVERAGE)
            report["risk_coverage_figure"] = str(out_dir / RISK_COVERAGE)
    except UserError as e:
        failures.append(str(e))
    try:
        outputs.save(json.dumps(report, indent=2), out_dir / "evaluation.json")
    except UserError as e:
        failures.append(str(e))
    return failures
