"""Plot the largest viable margin against depth: hyperbolic (Theorem 1) vs the cosine classifier's cap.

    python docs/margins.py   # writes docs/margins.png
"""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from hirobust.geometry.poincare import euclidean_margin_cap, max_margin  # noqa: E402


def main(c: float = 1.0, out: Path | None = None) -> Path:
    out = out or Path(__file__).with_name("margins.png")
    r = 1 / math.sqrt(c)
    eta = torch.linspace(0.01, 0.999, 400, dtype=torch.float64) * r
    depth = 2 / math.sqrt(c) * torch.atanh(math.sqrt(c) * eta)  # d_c(0, x) for ‖x‖ = η
    fig, ax = plt.subplots(figsize=(6, 4))
    for theta in (math.pi / 16, math.pi / 4, math.pi / 2):
        ax.plot(depth, max_margin(eta, theta, c), label=f"hyperbolic γ_max, θ = {theta / math.pi:.3g}π")
    ax.plot(depth, euclidean_margin_cap(eta, 1.0), "k--", label="cosine cap 2λη² (λ = 1)")
    ax.set_xlabel("depth of the prototypes, d_c(0, x) = (2/√c) artanh(√c η)")
    ax.set_ylabel("largest viable margin")
    ax.set_title(f"Margins grow with depth in the Poincaré ball (c = {c:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(main())
