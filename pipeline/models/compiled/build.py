"""One AOTInductor package built in a process of its own:

    python -m pipeline.models.compiled.build EXPORTED PACKAGE

The run saves the exported model call (`torch.export`, weights included) and this process compiles it with
gradients off (inductor freezes and pre-packs weights only then), in an inductor cache of its own that the run
deletes after: a compile's memory peak and its intermediate files (about twice the weights: object files, the
shared library) leave with it, and the run's own process keeps only the package it loads.

The frozen weights go into the package beside the library, not inside it (`binary_blob`): loaded, they are the
process's own memory. Inside the library they were loaded twice, once as a copy and once as the library's pages,
file-backed: a machine without swap under memory pressure reclaims those first and the calls fault them back
(docs/benchmarking.md).
"""

from __future__ import annotations

import sys

CONFIGS = {"freezing": True, "aot_inductor.package_constants_on_disk_format": "binary_blob"}


def main(argv: list[str] | None = None) -> None:
    exported, package = (argv or sys.argv[1:])[:2]
    import torch

    torch.set_grad_enabled(False)
    program = torch.export.load(exported)
    torch._inductor.aoti_compile_and_package(program, package_path=package, inductor_configs=CONFIGS)


if __name__ == "__main__":
    main()
