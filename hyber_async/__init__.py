"""hyber_async: an async client of the Hyber (GMS) JSON V2 mass-messaging API.

Send batches and broadcasts over Viber, SMS and WhatsApp, stream any number of recipients
through the 50,000-per-request limit, and account for every one of them.
"""

from ._client import HyberClient
from ._codec import converter
from ._config import DEFAULT_RETRY, DEFAULT_TIMEOUTS, RetryPolicy, Timeouts
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    HyberError,
    NotSentError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    PermissionDeniedError,
    Problem,
    RateLimitError,
    ReportParseError,
    ServerError,
    UnexpectedResponseError,
    ValidationError,
)
from ._models import (
    BatchRequest,
    BroadcastRequest,
    Campaign,
    Channel,
    ChannelOptions,
    DeliveryReport,
    ErrorCode,
    HyberStatus,
    JobAccepted,
    JobStatus,
    Message,
    MessageResult,
    MessageStatus,
    Recipient,
    SmsOptions,
    Status,
    SyncResult,
    ViberOptions,
    WhatsAppOptions,
)
from ._poller import (
    CampaignSummary,
    Counts,
    JobPoller,
    JobUpdate,
    PollDeadlineError,
    poll_jobs,
    wait_for_jobs,
)
from ._reports import DeliveryReportReceiver, parse_delivery_reports
from ._send_report import JobRef, Outcome, Progress, RecipientOutcome, SendReport
from ._validation import MAX_ITEMS

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "MAX_ITEMS",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchRequest",
    "BroadcastRequest",
    "Campaign",
    "CampaignSummary",
    "Channel",
    "ChannelOptions",
    "Counts",
    "DeliveryReport",
    "DeliveryReportReceiver",
    "ErrorCode",
    "HyberClient",
    "HyberError",
    "HyberStatus",
    "JobAccepted",
    "JobPoller",
    "JobRef",
    "JobStatus",
    "JobUpdate",
    "Message",
    "MessageResult",
    "MessageStatus",
    "NotSentError",
    "Outcome",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PollDeadlineError",
    "Problem",
    "Progress",
    "RateLimitError",
    "Recipient",
    "RecipientOutcome",
    "ReportParseError",
    "RetryPolicy",
    "SendReport",
    "ServerError",
    "SmsOptions",
    "Status",
    "SyncResult",
    "Timeouts",
    "UnexpectedResponseError",
    "ValidationError",
    "ViberOptions",
    "WhatsAppOptions",
    "__version__",
    "converter",
    "parse_delivery_reports",
    "poll_jobs",
    "wait_for_jobs",
]
