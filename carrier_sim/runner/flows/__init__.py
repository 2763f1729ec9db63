"""The flows phones run, by the name scenario files give them (see :mod:`carrier_sim.runner.flows.base`)."""

from __future__ import annotations

from carrier_sim.runner.flows.activation import ActivationFlow, RenewalFlow
from carrier_sim.runner.flows.base import FlowContext, FlowCounters, PhoneFlow
from carrier_sim.runner.flows.email import EmailFlow
from carrier_sim.runner.flows.messaging import MoMtFlow
from carrier_sim.runner.flows.rcs import RcsCellularFlow, RcsOtpFlow

__all__ = ["FLOW_TYPES", "FlowContext", "FlowCounters", "PhoneFlow"]

#: Flow name -> the class running it.
FLOW_TYPES: dict[str, type[PhoneFlow]] = {
    "activation": ActivationFlow,
    "renewal": RenewalFlow,
    "mo_mt": MoMtFlow,
    "rcs_cellular": RcsCellularFlow,
    "rcs_otp": RcsOtpFlow,
    "email": EmailFlow,
}
