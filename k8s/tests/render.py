"""Renders every kustomization that CI validates, in one place for scripts/k8s-validate.sh and
the policy tests.

    python3 k8s/tests/render.py OUT_DIR      # writes OUT_DIR/<variant>.yaml, prints the paths

A variant is a kustomization directory under k8s/, optionally combined with components (rendered
through a throw-away kustomization in a temporary directory, which must reference them by
relative path: kustomize refuses absolute ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

K8S_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = K8S_DIR.parent


@dataclass(frozen=True)
class Variant:
    name: str
    # Kustomization directory, relative to k8s/.
    base: str
    # Optional components, relative to k8s/.
    components: tuple[str, ...] = ()
    # "fleet": the whole server fleet (Deployment, Service, HPA, ...); "etl": an ETL Job only.
    scope: str = "fleet"
    # Expected PodDisruptionBudget minAvailable (the issue fixes it per overlay).
    pdb_min_available: int | str | None = None
    # How datasets reach the servers: "volume" (a shared ReadOnlyMany claim) or "object-store"
    # (the ETL publishes to a bucket, each pod downloads into its emptyDir cache).
    publish: str = "volume"


VARIANTS: tuple[Variant, ...] = (
    Variant("small", "overlays/small", pdb_min_available=1),
    Variant("large", "overlays/large", pdb_min_available="50%"),
    Variant("kind", "overlays/kind", pdb_min_available=1),
    Variant(
        "small+request-rate",
        "overlays/small",
        components=("optional/request-rate",),
        pdb_min_available=1,
    ),
    Variant("object-store", "overlays/object-store", pdb_min_available=1, publish="object-store"),
    Variant("etl-job", "etl-job", scope="etl"),
)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError(
            "kubectl not found on PATH: it renders the kustomizations (`kubectl kustomize`); "
            "it ships with the project's machine image, elsewhere install it from your "
            "distribution or the Kubernetes release packages"
        )
    return path


def render(variant: Variant) -> str:
    """Returns the rendered multi-document YAML of one variant."""
    if not variant.components:
        target = K8S_DIR / variant.base
        return _kustomize(target)
    with tempfile.TemporaryDirectory(prefix="quarry-k8s-") as tmp:
        rel = os.path.relpath(K8S_DIR, tmp)
        lines = [
            "apiVersion: kustomize.config.k8s.io/v1beta1",
            "kind: Kustomization",
            "resources:",
            f"  - {rel}/{variant.base}",
            "components:",
            *[f"  - {rel}/{c}" for c in variant.components],
        ]
        Path(tmp, "kustomization.yaml").write_text("\n".join(lines) + "\n")
        return _kustomize(Path(tmp))


def _kustomize(directory: Path) -> str:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return proc.stdout


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        path = out / f"{variant.name}.yaml"
        path.write_text(render(variant))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
