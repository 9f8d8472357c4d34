"""The Stepwise code location: everything under `orchestration/defs/`, autoloaded.

`workspace.yaml` at the repository root points `dagster dev` here; `orchestration/dg.toml` names
`orchestration.defs` as the defs module.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
