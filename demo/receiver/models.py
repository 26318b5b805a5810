from django.db import models


class ReceivedRequest(models.Model):
    """One webhook request that reached the demo's receiver page."""

    received_at = models.DateTimeField(auto_now_add=True)
    inbox = models.CharField(max_length=100)
    method = models.CharField(max_length=10)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    signature = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.inbox} at {self.received_at:%H:%M:%S}"
