"""The Triton merge kernel, run on CPU by Triton's interpreter, matches the torch path.

``TRITON_INTERPRET=1`` must be set before triton is imported, so the check runs in a subprocess.
The interpreter converts fp32 to bf16 by truncation (a GPU rounds to nearest even), so bf16 results
may differ from the torch path by one bf16 ulp; fp32 results must agree to fp32 rounding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _check(root: str) -> None:
    """Runs in the subprocess: every merge agrees between the Triton kernel and the torch path."""
    import torch

    from demix.merge import MergeEngine
    from tests.test_merge import save_components

    assert os.environ.get("TRITON_INTERPRET") == "1"
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 2**-7)):
        dirs = save_components(Path(root) / str(dtype), 4, dtype=dtype)
        ref = MergeEngine.from_checkpoints(dirs[1:], device="cpu", dtype=dtype, backend="torch", base=dirs[0])
        tri = MergeEngine.from_checkpoints(
            dirs[1:], device="cpu", dtype=dtype, backend="triton", base=dirs[0]
        )
        streamed = MergeEngine.from_checkpoints(
            dirs[1:], device="cpu", dtype=dtype, backend="triton", stream=True, block=4096
        )
        streamed.stream_bytes = 4 * 4096 * 4  # one block per staging buffer
        assert tri.backend == "triton" and streamed.streamed
        cases = [
            ([0.2, 0.3, 0.5], "linear", True),
            ([1.0, 0.0, 0.0], "linear", True),
            ([0.5, 0.25, 0.0], "task_arithmetic", False),
        ]
        for w, method, normalize in cases:
            engines = (ref, tri) if method != "linear" else (ref, tri, streamed)
            for e in engines:
                e.merge(w, method=method, normalize=normalize)
            for e in engines[1:]:
                torch.testing.assert_close(
                    e.flat[: e.numel].float(),
                    ref.flat[: ref.numel].float(),
                    rtol=tol,
                    atol=1e-6,
                    msg=f"{dtype} {w} {method}",
                )
        logits = tri.model(torch.arange(6).view(1, 6)).logits
        assert torch.isfinite(logits.float()).all()
    print("triton-ok")


def test_triton_kernel_matches_torch_path(tmp_path: Path) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "TQDM_DISABLE": "1"}
    code = f"from tests.test_merge_triton import _check; _check({str(tmp_path)!r})"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    assert res.returncode == 0 and "triton-ok" in res.stdout, res.stdout[-2000:] + res.stderr[-4000:]
