# Configuration: validated, resolved into the jobs to run. Bad input stops here, before any
# job, with a message that names the key and the fix.
import json
import re
import shlex

import backends
from workflow.lib.plan import plan_from_config, PlanError

try:
    PLAN = plan_from_config(config, REPO, workflow)
except PlanError as e:
    raise WorkflowError(str(e)) from None

PY = shlex.quote(sys.executable)
RESULTS = "results"
STORE = f"{RESULTS}/mlflow/.store-ready"
for note in PLAN.notes:
    print(f"fwbench: {note}", file=sys.stderr)
# One GPU job at a time unless the user says otherwise (--resources gpu=N).
workflow.global_resources.setdefault("gpu", 1)


wildcard_constraints:
    experiment="|".join(map(re.escape, PLAN.experiments)) or "NONE",
    backend="|".join(map(re.escape, PLAN.backends)) or "NONE",
    device="cpu|gpu",
    dataset="[a-z0-9-]+",
