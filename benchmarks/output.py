"""What every benchmark ends with: its result as JSON, on the last line and in --json_out."""
import json
from typing import Any, Optional


def write_result(result: Any, json_out: Optional[str]) -> None:
  """Writes `result` to `json_out` (indented; skipped when None) and prints it as one line."""
  if json_out:
    with open(json_out, "w") as fh:
      json.dump(result, fh, indent=1)
  print(json.dumps(result))
