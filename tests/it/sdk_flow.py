"""openstacksdk (Debian's python3-openstacksdk) against our API, authenticated by a real
Keystone; run by tests/it/api.rs with /usr/bin/python3.

    sdk_flow.py create   volumes, snapshot, clone, legacy attach/detach, types, quotas;
                         prints {"volume", "snapshot", "clone", "type"} as JSON
    sdk_flow.py delete   deletes what `create` made (ids from SDK_IDS)

Environment: OS_AUTH_URL, SDK_USER/SDK_PASSWORD/SDK_PROJECT_ID (a member),
SDK_ADMIN_PASSWORD (Keystone's bootstrap admin), SDK_ENDPOINT (the API's /v3 base).
Every step asserts what it gets; a failure exits non-zero with the step in the message.
"""

import json
import os
import sys

import openstack
from keystoneauth1.identity import base as ksa_base

# The test Keystone issues 30-second tokens; keystoneauth would take a new one for every
# request (it renews any token with less than 120 s left).
ksa_base.BaseIdentityPlugin.MIN_TOKEN_LIFE_SECONDS = 5


def connect(user, password, project):
    scope = {"project_id": project} if project else {"project_name": "admin", "project_domain_id": "default"}
    return openstack.connect(
        auth_url=os.environ["OS_AUTH_URL"],
        username=user,
        password=password,
        user_domain_id="default",
        block_storage_endpoint_override=os.environ["SDK_ENDPOINT"] + "/%(project_id)s",
        block_storage_api_version="3",
        **scope,
    )


def check(cond, what):
    if not cond:
        raise SystemExit("sdk_flow: " + what)


def create():
    me = connect(os.environ["SDK_USER"], os.environ["SDK_PASSWORD"], os.environ["SDK_PROJECT_ID"])
    admin = connect("admin", os.environ["SDK_ADMIN_PASSWORD"], None)
    bs = me.block_storage

    # A type with an extra spec, made by the admin.
    t = admin.block_storage.create_type(name="sdk-" + os.environ["SDK_PROJECT_ID"][:8], extra_specs={"sdk:tier": "gold"})
    got = admin.block_storage.get_type(t.id)
    check(got.extra_specs == {"sdk:tier": "gold"}, "type extra specs: %r" % (got.extra_specs,))

    v = bs.create_volume(size=1, name="sdk-vol", volume_type=t.name, metadata={"k": "v"})
    v = bs.wait_for_status(v, status="available", failures=["error"], interval=0.5, wait=120)
    check(v.size == 1 and v.name == "sdk-vol" and v.volume_type == t.name, "created volume: %r" % (v,))
    check(v.metadata == {"k": "v"}, "metadata: %r" % (v.metadata,))
    check(any(x.id == v.id for x in bs.volumes(details=True)), "volume listed")
    check(bs.find_volume("sdk-vol").id == v.id, "volume found by name")

    bs.extend_volume(v, 2)
    # wait_for_status returns at once when the object it is given already has the
    # status: give it a fresh one (the API answers with the volume `extending`).
    v = bs.get_volume(v.id)
    check(v.status in ("extending", "available"), "extending: %r" % (v.status,))
    v = bs.wait_for_status(v, status="available", failures=["error", "error_extending"], interval=0.5, wait=120)
    v = bs.get_volume(v.id)
    check(v.size == 2, "extended size: %r" % (v.size,))

    bs.set_volume_metadata(v, k2="v2")
    check(bs.get_volume(v.id).metadata == {"k": "v", "k2": "v2"}, "metadata set")

    s = bs.create_snapshot(volume_id=v.id, name="sdk-snap")
    s = bs.wait_for_status(s, status="available", failures=["error"], interval=0.5, wait=120)
    check(any(x.id == s.id for x in bs.snapshots(details=True)), "snapshot listed")

    c = bs.create_volume(size=2, name="sdk-clone", snapshot_id=s.id)
    c = bs.wait_for_status(c, status="available", failures=["error"], interval=0.5, wait=120)
    check(c.snapshot_id == s.id, "clone's snapshot: %r" % (c.snapshot_id,))

    # The legacy attach flow (the SDK of Debian 12 has no attachments API).
    bs.reserve_volume(c)
    check(bs.get_volume(c.id).status == "attaching", "reserved volume attaching")
    connector = {"host": "sdk-host", "initiator": "iqn.sdk"}
    # This SDK's init_volume_attachment returns nothing; read the answer through its
    # session as well.
    bs.init_volume_attachment(c, connector)
    resp = bs.post("/volumes/%s/action" % c.id, json={"os-initialize_connection": {"connector": connector}})
    check(resp.status_code == 200, "initialize_connection: %s %s" % (resp.status_code, resp.text))
    info = resp.json()["connection_info"]
    check(info["driver_volume_type"] == "rbd", "connection info: %r" % (info,))
    check(info["data"]["name"].endswith("volume-" + c.id), "rbd name: %r" % (info["data"],))
    bs.attach_volume(c, mountpoint="/dev/vdb", instance="7a4d8a36-7b1b-4a4c-9d4e-4d1a2f0f0c01")
    c = bs.get_volume(c.id)
    check(c.status == "in-use" and len(c.attachments) == 1, "attached: %r %r" % (c.status, c.attachments))
    bs.detach_volume(c, c.attachments[0]["attachment_id"])
    check(bs.get_volume(c.id).status == "available", "detached")

    # Quotas and limits (admin sets, the member reads its own).
    project = os.environ["SDK_PROJECT_ID"]
    admin.block_storage.update_quota_set(admin.block_storage.get_quota_set(project), volumes=7)
    q = bs.get_quota_set(project, usage=True)
    # The SDK splits {"limit", "in_use", "reserved"} into the attribute and usage.
    check(q.volumes == 7 and q.usage.get("volumes") == 2, "quota usage: %r %r" % (q.volumes, q.usage))
    limits = bs.get_limits()
    check(limits.absolute.max_total_volumes == 7, "limits: %r" % (limits.absolute,))

    print(json.dumps({"volume": v.id, "snapshot": s.id, "clone": c.id, "type": t.id}))


def delete():
    ids = json.loads(os.environ["SDK_IDS"])
    me = connect(os.environ["SDK_USER"], os.environ["SDK_PASSWORD"], os.environ["SDK_PROJECT_ID"])
    admin = connect("admin", os.environ["SDK_ADMIN_PASSWORD"], None)
    bs = me.block_storage
    clone = bs.get_volume(ids["clone"])
    bs.delete_volume(clone)
    bs.wait_for_delete(clone, interval=0.5, wait=120)
    snap = bs.get_snapshot(ids["snapshot"])
    bs.delete_snapshot(snap)
    bs.wait_for_delete(snap, interval=0.5, wait=120)
    vol = bs.get_volume(ids["volume"])
    bs.delete_volume(vol)
    bs.wait_for_delete(vol, interval=0.5, wait=120)
    admin.block_storage.delete_type(ids["type"])
    admin.block_storage.revert_quota_set(os.environ["SDK_PROJECT_ID"])
    print("{}")


if __name__ == "__main__":
    {"create": create, "delete": delete}[sys.argv[1]]()
