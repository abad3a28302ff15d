"""The monitor Lambda and the status API, deployed with `chalice deploy`.

Handlers only translate events to calls into chalicelib (see ARCHITECTURE.md).
The reconcile handlers and status routes arrive with the monitor issue.
"""

from chalice import Chalice

app = Chalice(app_name="ds-runner-monitor")
