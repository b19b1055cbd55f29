"""A local emulator of Twilio's Communications API, for rehearsals, tests and benchmarks.

It follows `comms-api.md`: senders, sender pools, messages and operations under `/preview`
and `/v1`, simulated per-sender delivery, RCS to SMS fallback, and faults on demand.
It imports nothing from the sending side of `campaign`, only three leaf modules that belong
to neither side (`campaign.e164`, `campaign.segments`, `campaign.liquid_plain`), so it could
become its own package with those beside it.
"""

from campaign.emulator.app import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    Credentials,
    RunningEmulator,
    build_app,
    serve,
)
from campaign.emulator.delivery import Clock, DeliveryProfile
from campaign.emulator.faults import FaultError, Faults
from campaign.emulator.sample_data import SAMPLE_POOL_ID, DataFileError, load_account_data

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "SAMPLE_POOL_ID",
    "Clock",
    "Credentials",
    "DataFileError",
    "DeliveryProfile",
    "FaultError",
    "Faults",
    "RunningEmulator",
    "build_app",
    "load_account_data",
    "serve",
]
