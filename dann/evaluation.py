"""Measuring a model: its accuracy on a test set, per class and as a confusion matrix (training's
evaluations and valid.py's report), the figure and record valid.py writes, and the "not sure"
threshold, computed when a run finishes and read back wherever a model reads pictures."""
import json
from pathlib import Path

import torch

from dann import outputs
from dann.common import UserError
from dann.fonts import drawable, font_for
from dann.pretrained import PRETRAINED_DIR, bundled_entry


UNSURE_SHARE = 0.05  # the share of the test digits of its labelled domain a model marks "not sure"
# Below it the top class is less likely than all the others together: such a reading is never "sure",
# whatever a model's own threshold (a model without one included)
SURE_FLOOR = 0.5


def sure_at(threshold):
    """The top probability a reading needs to be "sure": the model's threshold, never below SURE_FLOOR."""
    return max(SURE_FLOOR, threshold or 0.0)


def unsure_threshold(model, images):
    """The top probability below which a reading is marked "not sure": its UNSURE_SHARE quantile
    over the test images of the domain whose labels the model learnt (the source; the target for
    target-only), a rule that reads no label (the usual keep-95%-of-in-distribution rule of
    out-of-distribution detection, on Hendrycks & Gimpel 2017's score)."""
    return torch.quantile(model.predict_proba(images).max(1).values.double().cpu(), UNSURE_SHARE).item()


def predictions(model, images):
    """The class the model gives each image (batched, in eval mode, no gradient)."""
    return model.predict_proba(images).argmax(1)


def accuracy(predicted, labels):
    """The share of right predictions, counted exactly (not a float32 mean)."""
    return (predicted == labels).sum().item() / len(labels)


def evaluate(model, sets):
    """Test accuracy per domain; None for an unlabelled target folder, which has no labels to score."""
    tests = {domain: sets[f"{domain}_test"] for domain in ("source", "target")}
    return {f"{domain}_test_acc": None if labels is None else accuracy(predictions(model, images), labels)
            for domain, (images, labels) in tests.items()}


def shown(acc):
    """An accuracy as the scripts print it, or why there is none."""
    return "none (an unlabelled target)" if acc is None else f"{acc:.4f}"


def unsure_below(ckpt, path):
    """The top probability under which image_annotate.py marks a reading "not sure" (a finished
    run's checkpoint holds it; a bundled model's is in the registry), or None if unknown."""
    if "unsure_below" in ckpt:
        return ckpt["unsure_below"]
    return (bundled_entry(path) or {}).get("unsure_below")  # bundled files from before keep it in the registry


def confusion_matrix(labels, predictions, classes):
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).view(classes, classes)


def domain_report(model, images, labels, role, class_names, threshold=None):
    """Accuracy, per-class accuracy and the confusion matrix on one test set; for an unlabelled
    folder, the share of its pictures predicted as each class instead. Both with the share of
    pictures whose reading image_annotate.py would mark "not sure" (model's `threshold`, SURE_FLOOR)."""
    top, predicted = model.predict_proba(images).max(1)
    not_sure = (top < sure_at(threshold)).sum().item() / max(1, len(images))
    n = len(class_names)
    if labels is None:
        share = (torch.bincount(predicted, minlength=n) / max(1, len(predicted))).tolist()
        return {"role": role, "images": len(images), "accuracy": None, "why_no_accuracy": "an unlabelled folder",
                "predicted_share": share, "not_sure_share": not_sure}
    cm = confusion_matrix(labels, predicted, n)
    per_class = (cm.diag() / cm.sum(1).clamp(min=1)).tolist()
    return {"role": role, "images": len(labels), "accuracy": accuracy(predicted, labels),
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(), "not_sure_share": not_sure}


def test_reports(model, roles, class_names, data_dir=None, allow_download=True, device="cpu", threshold=None):
    """domain_report on the test split of each domain of `roles` ({domain: "source", "target" or
    "extra"}), with the model's "not sure" threshold; a domain whose classes are not the model's is
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
                                      class_names, threshold)
    return results


def format_table(results, class_names):
    """One row per test set: accuracy, the share image_annotate.py would mark "not sure", and per-class
    accuracy (an unlabelled folder: predicted shares)."""
    width = max(5, *(len(c) for c in class_names[:12]))
    head = (f"{'domain':<12} {'role':<7} {'images':>6} {'acc':>7} {'not sure':>8} | "
            + " ".join(f"{c[:width]:>{width}}" for c in class_names))
    lines = [head, "-" * len(head)]
    shown = display_names(list(results))
    for name, r in results.items():
        acc, cells = ((f"{r['accuracy']:>7.4f}", r["per_class_accuracy"]) if r["accuracy"] is not None
                      else (f"{'none':>7}", r["predicted_share"]))
        note = "" if r["accuracy"] is not None else "  (no labels: share predicted as each class)"
        lines.append(f"{shown[name][-12:]:<12} {r['role']:<7} {r['images']:>6} {acc} {r['not_sure_share']:>8.3f} | "
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


def evaluation_folder(path):
    """Where an evaluation of checkpoint `path` writes by default: figures/<name>/, a name of its
    own for each checkpoint, so that it never lands in pretrained/ or beside another run's files."""
    if path.parent == PRETRAINED_DIR:
        return Path("figures") / path.stem
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:  # outside the current folder: its absolute path names it
        shown = path.resolve()
    return Path("figures") / "-".join(part for part in shown.with_suffix("").parts if part not in ("/", ".."))


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
    outputs.refuse_foreign([record, *(out_dir / name for name in figure_names(domains).values())],
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
    try:
        outputs.save(json.dumps(report, indent=2), out_dir / "evaluation.json")
    except UserError as e:
        failures.append(str(e))
    return failures
