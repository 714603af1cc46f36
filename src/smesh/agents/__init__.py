"""Agents that coordinate through a field alone."""

from smesh.agents.agent import Agent
from smesh.agents.base import Judgement, WorkContext
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.function import FunctionAgent
from smesh.agents.justify import Justification, Justifier
from smesh.agents.protocol import Ruling, TaskSpec, VerifySpec
from smesh.agents.runtime import Budget, Runtime, Settings
from smesh.agents.team import RunReport, TaskReport, Team

__all__ = [
    "Agent",
    "Budget",
    "FunctionAgent",
    "Judgement",
    "Justification",
    "Justifier",
    "Ruling",
    "RunReport",
    "Runtime",
    "Settings",
    "TaskBoard",
    "TaskReport",
    "TaskSpec",
    "TaskState",
    "Team",
    "VerifySpec",
    "WorkContext",
]
