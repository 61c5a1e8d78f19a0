"""Recompute the model card's numbers from the shipped checkpoints; print a markdown table.

    python -m training.evaluate --data ../shared/data/celeba [--models resources/models]

On the held-out faces (never trained on): classifier accuracy per attribute; generator FD_cls
(1,000 generated vs 1,000 held-out real, in the classifier's penultimate features) next to the
baseline generator's and the real-vs-real floor (the first 1,000 training faces vs held-out);
encoder PSNR of G(E(x)) vs x and the attribute agreement of C on both; and attribute coverage:
the share of faces the classifier calls positive, held-out real vs generated. Coverage is why
the generator is fine-tuned with `--balance`: an attribute G rarely draws leaves no room for a
linear latent direction to reach it (see MODELS.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import resources
from core.checkpoint import load_checkpoint
from core.data import load_celeba, to_model_range
from core.device import describe, resolve_device
from core.identity import SAME_PERSON
from core.metrics import attribute_accuracy, classifier_features, frechet_distance, path_length, psnr
from training.yardsticks import EVALUATOR_FILE, Yardsticks, coverage_misses

MODELS = resources.MODELS_DIR
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="CelebA folder (official layout)")
    p.add_argument("--models", default=str(MODELS), help="folder with generator.pt, classifier.pt, encoder.pt")
    p.add_argument("--baseline", default=None, help="baseline generator (default: MODELS/baseline/generator.pt if present)")
    p.add_argument("--n", type=int, default=1000, help="faces per side for FD_cls")
    p.add_argument("--coverage-n", type=int, default=10000, help="generated faces for attribute coverage")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--invert-n", type=int, default=100, help="held-out faces to invert (0: skip inversion)")
    p.add_argument("--photos", default=str(PHOTOS) if PHOTOS.is_dir() else None,
                   help="folder of real, unaligned photos to invert too")
    p.add_argument("--grids", default=None, metavar="DIR",
                   help="also write DIR/generated_64.png and DIR/heldout_reconstructions.png")
    return p.parse_args(argv)


@torch.no_grad()
def sample(gen: torch.nn.Module, n: int, seed: int, device: torch.device, batch: int = 250) -> torch.Tensor:
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return torch.cat([gen(z[i:i + batch]).float() for i in range(0, n, batch)])


@torch.no_grad()
def positive_share(classifier: torch.nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Per attribute, the share of `images` (uint8 or [-1, 1] float) the classifier calls present."""
    counts = torch.zeros(())
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        x = to_model_range(x) if x.dtype == torch.uint8 else x
        counts = counts + (classifier(x) > 0).float().sum(0).cpu()
    return counts / max(len(images), 1)


@torch.no_grad()
def encoder_results(encoder, gen, classifier, images: torch.Tensor, device: torch.device, batch: int = 250) -> dict:
    psnrs, agree = [], []
    for i in range(0, len(images), batch):
        x = to_model_range(images[i:i + batch].to(device))
        recon = gen(encoder(x))
        psnrs.append(psnr(recon, x).cpu())
        agree.append(((classifier(recon) > 0) == (classifier(x) > 0)).float().mean(1).cpu())
    values = torch.cat(psnrs)
    return {"psnr_mean": float(values.mean()), "psnr_median": float(values.median()),
            "attribute_agreement": float(torch.cat(agree).mean())}


def evaluate(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    models = Path(args.models)
    ds = load_celeba(args.data, cache_dir=args.cache_dir, progress=True)
    held_x, held_y = ds.split(held_out=True)
    train_x, _ = ds.split(held_out=False)
    n = min(args.n, len(held_x), len(train_x))
    classifier_ck = load_checkpoint(models / "classifier.pt", "classifier", device)
    classifier = classifier_ck.model
    results: dict = {"device": describe(device), "heldout_images": len(held_x), "n": n}

    acc = attribute_accuracy(classifier, held_x, held_y)
    results["classifier"] = {"mean_accuracy": float(acc.mean()),
                             "per_attribute": dict(zip(classifier_ck.attributes, acc.tolist()))}

    real_feats = classifier_features(classifier, held_x[:n])
    results["fd_real_floor"] = frechet_distance(classifier_features(classifier, train_x[:n]), real_feats)
    gen = load_checkpoint(models / "generator.pt", "generator", device).model
    results["fd_generator"] = frechet_distance(classifier_features(classifier, sample(gen, n, args.seed, device)), real_feats)
    results["path_length"] = {"z": path_length(gen, classifier, "z", seed=args.seed)}
    if hasattr(gen, "synthesis"):
        results["path_length"]["w"] = path_length(gen, classifier, "w", seed=args.seed)
    results["coverage"] = {"generated_n": args.coverage_n,
                           "per_attribute": coverage_shares(lambda x: positive_share(classifier, x), gen,
                                                            held_x.to(device), args.coverage_n, args.seed, device,
                                                            classifier_ck.attributes)}
    baseline = Path(args.baseline) if args.baseline else models / "baseline" / "generator.pt"
    base_gen = None
    if baseline.exists():
        base_gen = load_checkpoint(baseline, "generator", device).model
        results["fd_baseline"] = frechet_distance(
            classifier_features(classifier, sample(base_gen, n, args.seed, device)), real_feats)
    encoder_path = models / "encoder.pt"
    encoder = load_checkpoint(encoder_path, "encoder", device).model if encoder_path.exists() else None
    if encoder is not None:
        results["encoder"] = encoder_results(encoder, gen, classifier, held_x, device)
    if args.grids:
        write_grids(Path(args.grids), gen, encoder, held_x, device, args.seed)
    if (models / EVALUATOR_FILE).exists():
        sticks = Yardsticks(models, device, classifier_ck.attributes)
        results["evaluator"] = yardstick_results(args, sticks, gen, base_gen,
                                                 held_x, held_y, train_x[:n], n)
        if encoder is not None and args.invert_n > 0:
            results["inversion"] = inversion_results(args, sticks, held_x[:args.invert_n])
    return results


def yardstick_results(args: argparse.Namespace, sticks: Yardsticks, gen, base_gen, held_x: torch.Tensor,
                      held_y: torch.Tensor, train_x: torch.Tensor, n: int) -> dict:
    """The evaluator's own accuracy, its Fréchet distances and its attribute coverage."""
    device = sticks.device
    acc = sticks.accuracy(held_x, held_y)
    single = attribute_accuracy(sticks.evaluator, held_x, held_y)
    real = sticks.features(held_x[:n])
    out = {"mean_accuracy": float(acc.mean()), "mean_accuracy_one_view": float(single.mean()), "per_attribute": dict(zip(sticks.attributes, acc.tolist())),
           "fd_real_floor": frechet_distance(sticks.features(train_x), real),
           "fd_generator": frechet_distance(sticks.features(sample(gen, n, args.seed, device)), real)}
    if base_gen is not None:
        out["fd_baseline"] = frechet_distance(sticks.features(sample(base_gen, n, args.seed, device)), real)
    out["coverage"] = evaluator_coverage(sticks, gen, held_x, args.coverage_n, args.seed)
    return out


def coverage_shares(share, gen, real: torch.Tensor, n: int, seed: int, device: torch.device,
                    attributes: list[str]) -> dict[str, tuple[float, float]]:
    """{attribute: (share of `real` faces, share of `n` generated faces)} that `share` (images -> (A,)
    shares) calls present."""
    real_share = share(real)
    gen_share = torch.zeros_like(real_share)
    for start in range(0, n, 2000):  # in chunks: 10,000 faces at once is 500 MB
        count = min(2000, n - start)
        gen_share += share(sample(gen, count, seed + 1 + start, device)) * count
    gen_share /= max(n, 1)
    return {a: (float(r), float(g)) for a, r, g in zip(attributes, real_share, gen_share)}


def evaluator_coverage(sticks: Yardsticks, gen, real: torch.Tensor, n: int, seed: int) -> dict[str, tuple[float, float]]:
    """`coverage_shares` read by the evaluator (p > 0.5, face and mirror)."""
    return coverage_shares(lambda x: (sticks.probs(x) > 0.5).float().mean(0), gen, real, n, seed, sticks.device,
                           sticks.attributes)


def inversion_results(args: argparse.Namespace, sticks: Yardsticks, held_x: torch.Tensor) -> dict:
    """The app's whole inversion (`Engine.invert_job`) on aligned held-out faces and on real photos."""
    from core.engine import Engine, InvertOutcome
    from core.align import FaceCrop
    from core.worker import run_inline

    engine = Engine(args.models, device=args.device, start_worker=False)

    def run(sources: list) -> dict:
        crops, results, found = [], [], 0
        for source in sources:
            outcome: InvertOutcome = run_inline(engine.invert_job, source)
            crops.append(outcome.crop.image)
            results.append(outcome.frame.image)
            found += outcome.crop.face is not None
        x, y = torch.stack(crops), torch.stack(results)
        p_x, p_y = sticks.probs(x), sticks.probs(y)
        aligned = all(isinstance(source, FaceCrop) for source in sources)
        row = {"n": len(sources), "face_found": None if aligned else found / max(len(sources), 1),
               "psnr": float(psnr(to_model_range(y), to_model_range(x)).mean()),
               "attribute_agreement": float(((p_x > 0.5) == (p_y > 0.5)).float().mean())}
        dist = sticks.identity_distance(x, y)
        if dist is not None:
            row["identity"], row["same_person"] = float(dist.mean()), float((dist < SAME_PERSON).mean())
        return row

    out = {"heldout": run([FaceCrop(image=img, box=(0, 0, img.shape[2], img.shape[1]), face=None) for img in held_x])}
    photos = sorted(p for p in Path(args.photos).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if args.photos else []
    if photos:
        out["photos"] = run([str(p) for p in photos])
    return out


@torch.no_grad()
def write_grids(folder: Path, gen, encoder, held_x: torch.Tensor, device: torch.device, seed: int) -> None:
    """The model card's pictures: 64 random faces; held-out faces (odd rows) over G(E(x)) (even rows)."""
    from core.export import save_png_grid

    save_png_grid(sample(gen, 64, seed, device).cpu(), folder / "generated_64.png", nrow=8, size=64)
    if encoder is not None:
        per_row = min(8, len(held_x))
        n = max(per_row, min(32, len(held_x)) // per_row * per_row)
        x = to_model_range(held_x[:n].to(device))
        recon = gen(encoder(x))
        pairs = [torch.cat([x[i:i + per_row], recon[i:i + per_row]]) for i in range(0, n, per_row)]
        save_png_grid(torch.cat(pairs).cpu(), folder / "heldout_reconstructions.png", nrow=per_row, size=64)


def markdown(results: dict) -> str:
    lines = [f"Held-out faces: {results['heldout_images']} · FD_cls on {results['n']} vs {results['n']} · "
             f"{results['device']}", "", "| metric | value |", "|---|---|",
             f"| classifier mean accuracy (40 attributes) | {100 * results['classifier']['mean_accuracy']:.2f} % |",
             f"| FD_cls generator (shipped) | {results['fd_generator']:.2f} |"]
    if "fd_baseline" in results:
        ratio = results["fd_generator"] / max(results["fd_baseline"], 1e-9)
        lines.append(f"| FD_cls baseline (plain DCGAN recipe) | {results['fd_baseline']:.2f} |")
        lines.append(f"| shipped / baseline | {ratio:.3f} |")
    lines.append(f"| FD_cls real vs real (floor) | {results['fd_real_floor']:.2f} |")
    for space, value in results.get("path_length", {}).items():
        lines.append(f"| perceptual path length in {space} (classifier maps, lower = smoother) | {value:.1f} |")
    if "encoder" in results:
        enc = results["encoder"]
        lines.append(f"| encoder PSNR G(E(x)) vs x, mean / median | {enc['psnr_mean']:.2f} / {enc['psnr_median']:.2f} dB |")
        lines.append(f"| encoder attribute agreement C(x) vs C(G(E(x))) | {100 * enc['attribute_agreement']:.1f} % |")
    coverage = results["coverage"]["per_attribute"]
    lines += ["", f"Coverage: share of faces the classifier calls positive, {results['heldout_images']} held-out real "
              f"vs {results['coverage']['generated_n']} generated.", "",
              "| attribute | accuracy | real share | generated share |", "|---|---|---|---|"]
    lines += [f"| {name} | {100 * a:.1f} % | {100 * coverage[name][0]:.1f} % | {100 * coverage[name][1]:.2f} % |"
              for name, a in results["classifier"]["per_attribute"].items()]
    if "evaluator" in results:
        lines += ["", yardstick_markdown(results)]
    return "\n".join(lines)


def yardstick_markdown(results: dict) -> str:
    ev = results["evaluator"]
    lines = ["By the yardsticks (the evaluator, never used by any method; identity by dlib, < 0.6 = same person):",
             "", "| metric | value |", "|---|---|",
             f"| evaluator mean accuracy (40 attributes, held-out; face + mirror) | {100 * ev['mean_accuracy']:.2f} % |",
             f"| evaluator mean accuracy, one view | {100 * ev['mean_accuracy_one_view']:.2f} % |",
             f"| FD (evaluator features) generator | {ev['fd_generator']:.2f} |"]
    if "fd_baseline" in ev:
        lines.append(f"| FD (evaluator features) baseline | {ev['fd_baseline']:.2f} |")
    lines.append(f"| FD (evaluator features) real vs real (floor) | {ev['fd_real_floor']:.2f} |")
    inside, misses = coverage_misses(ev["coverage"])
    lines.append(f"| coverage: attributes with real share ≥ 2 % drawn at 0.5–2× it | {inside} of {inside + len(misses)}"
                 f"{'; outside: ' + ', '.join(misses) if misses else ''} |")
    for name, row in results.get("inversion", {}).items():
        label = "held-out aligned faces" if name == "heldout" else "real photos"
        lines.append(f"| inversion, {row['n']} {label}: PSNR / evaluator attribute agreement | "
                     f"{row['psnr']:.2f} dB / {100 * row['attribute_agreement']:.1f} % |")
        if row["face_found"] is not None:
            lines.append(f"| inversion, {label}: face found | {100 * row['face_found']:.0f} % |")
        if "identity" in row:
            lines.append(f"| inversion, {label}: identity distance / same person | "
                         f"{row['identity']:.3f} / {100 * row['same_person']:.0f} % |")
    lines += ["", "| attribute | evaluator accuracy | real share | generated share (evaluator) |", "|---|---|---|---|"]
    lines += [f"| {a} | {100 * acc:.1f} % | {100 * ev['coverage'][a][0]:.1f} % | {100 * ev['coverage'][a][1]:.2f} % |"
              for a, acc in ev["per_attribute"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    results = evaluate(parse_args(argv))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
