"""The controller: kopf handlers, the reconcile pass, drift, status, the API client."""
