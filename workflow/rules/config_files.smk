# The config files, read by the workflow itself before Snakemake loads the default one: a file that
# is not valid YAML stops here naming its file, line and column (Snakemake's own message names
# neither), a key given twice naming both lines (YAML would keep the last silently). Files given
# with --configfile are read by Snakemake before any workflow code runs: a YAML error in one is
# Snakemake's "Config file is not valid JSON or YAML" (README, "Config mistakes"), but this check
# still names a key given twice in them.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow imports the package's light modules (names, config resolution, the plan; stdlib
# only), from this checkout, whichever Python runs Snakemake.
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from pipeline.config.settings import config_file_error

#: The workflow's own config, under every --configfile (the Snakefile's configfile directive).
DEFAULT_CONFIG = "config/config.yaml"

_problem = config_file_error([DEFAULT_CONFIG, *workflow.configfiles])
if _problem:
    raise WorkflowError(_problem)
