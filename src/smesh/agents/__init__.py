"""Agents that coordinate through a field alone."""

from smesh.agents.agent import Agent
from smesh.agents.base import Judgement, WorkContext
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.function import FunctionAgent
from smesh.agents.handles import TaskHandle
from smesh.agents.human import (
    HumanAgent,
    HumanAnswer,
    HumanBackend,
    HumanChannel,
    HumanPrompt,
    QueueChannel,
    TerminalChannel,
)
from smesh.agents.justify import Justification, Justifier
from smesh.agents.protocol import ApprovalSpec, Ruling, TaskSpec, VerifySpec
from smesh.agents.runtime import Budget, Runtime, Settings
from smesh.agents.team import RunReport, TaskReport, Team

__all__ = [
    "Agent",
    "ApprovalSpec",
    "Budget",
    "FunctionAgent",
    "HumanAgent",
    "HumanAnswer",
    "HumanBackend",
    "HumanChannel",
    "HumanPrompt",
    "Judgement",
    "Justification",
    "Justifier",
    "QueueChannel",
    "Ruling",
    "RunReport",
    "Runtime",
    "Settings",
    "TaskBoard",
    "TaskHandle",
    "TaskReport",
    "TaskSpec",
    "TaskState",
    "Team",
    "TerminalChannel",
    "VerifySpec",
    "WorkContext",
]
