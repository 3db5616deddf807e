"""Wire shapes of TaurusDB objects, as documented for the v3 API."""

from __future__ import annotations

import uuid
from typing import Any

from emulator.clock import api_time
from emulator.state import Backup, InstanceInfo, Job

DATASTORE = {"type": "gaussdb-mysql", "version": "8.0"}
_NODES = uuid.UUID("0d6c3c1e-6a55-4c55-9a6c-6c6f3f8b6e07")


def created_backup(backup: Backup) -> dict[str, Any]:
    """201 body of POST /backups/create (the seed page's shape, nothing more)."""
    return {
        "backup": {
            "id": backup.id,
            "name": backup.name,
            "description": backup.description,
            "begin_time": api_time(backup.begin),
            "status": backup.status,
            "type": backup.type,
            "instance_id": backup.instance_id,
        },
        "job_id": backup.job_id,
    }


def listed_backup(backup: Backup) -> dict[str, Any]:
    """One element of GET /backups; unset strings are "" rather than null."""
    return {
        "id": backup.id,
        "name": backup.name,
        "begin_time": api_time(backup.begin),
        "end_time": api_time(backup.end) if backup.end else "",
        "status": backup.status,
        "take_up_time": backup.take_up_minutes,
        "type": backup.type,
        "size": backup.size_mb,
        "datastore": dict(DATASTORE),
        "instance_id": backup.instance_id,
        "description": backup.description,
    }


def job(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "created": api_time(job.created),
        "ended": api_time(job.ended) if job.ended else "",
        "process": job.process,
        "instance": {"id": job.instance_id, "name": job.instance_name},
        "entities": {"backup_id": job.backup_id},
        "fail_reason": job.fail_reason,
    }


def instance(info: InstanceInfo, project_id: str) -> dict[str, Any]:
    inst = info.instance
    nodes = [
        {
            "id": uuid.uuid5(_NODES, f"{inst.id}/{role}").hex + "no07",
            "name": f"{inst.name}_node{number:02d}",
            "type": role,
            "status": "ACTIVE" if info.status == "BACKING UP" else info.status,
            "az_code": "eu-de-01",
        }
        for number, role in enumerate(("master", "slave"), start=1)
    ]
    return {
        "id": inst.id,
        "name": inst.name,
        "project_id": project_id,
        "status": info.status,
        "type": "Cluster",
        "datastore": dict(DATASTORE),
        "backup_used_space": info.backup_used_space_gb,
        "backup_strategy": {"start_time": "19:00-20:00", "keep_days": "7"},
        "created": api_time(inst.created),
        "updated": api_time(inst.updated),
        "time_zone": "UTC+00:00",
        "nodes": nodes,
    }
