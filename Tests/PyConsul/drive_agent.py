"""Drives a running agent through py-consul, the Python client Consul's users reach it with, and
asserts what comes back (values, not just status codes).

    python3 Tests/PyConsul/drive_agent.py HOST PORT [GOSSIP_KEY]

Run by PyConsulEndToEndTests against a fresh `consul agent -dev`. GOSSIP_KEY is the agent's
`-encrypt` key, for the keyring calls. Prints one line per area and exits non-zero at the first
failed assertion.
"""

import base64
import io
import json
import sys
import tarfile
import threading
import time

import consul
import consul.check


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    gossip_key = sys.argv[3] if len(sys.argv) > 3 else None
    c = consul.Consul(host=host, port=port)

    # status: a -dev agent is its own leader.
    leader = c.status.leader()
    assert leader.endswith(":8300") or ":" in leader, leader
    assert c.status.peers() == [leader], c.status.peers()
    print("status ok")

    # kv: put/get, flags, cas, recurse, keys, delete, blocking get.
    assert c.kv.put("py/a", "1") is True
    assert c.kv.put("py/b", b"\x00\x01binary", flags=42) is True
    index, entry = c.kv.get("py/a")
    assert entry["Value"] == b"1" and entry["Key"] == "py/a", entry
    assert int(index) >= entry["ModifyIndex"], (index, entry)
    _, entry_b = c.kv.get("py/b")
    assert entry_b["Value"] == b"\x00\x01binary" and entry_b["Flags"] == 42, entry_b
    assert c.kv.put("py/a", "2", cas=entry["ModifyIndex"] - 1) is False
    assert c.kv.put("py/a", "2", cas=entry["ModifyIndex"]) is True
    assert c.kv.put("py/new", "x", cas=0) is True
    assert c.kv.put("py/new", "y", cas=0) is False
    _, entries = c.kv.get("py/", recurse=True)
    assert [e["Key"] for e in entries] == ["py/a", "py/b", "py/new"], entries
    _, keys = c.kv.get("py/", keys=True)
    assert keys == ["py/a", "py/b", "py/new"], keys
    assert c.kv.delete("py/new") is True
    assert c.kv.get("py/new")[1] is None

    woke = {}

    def blocked_get() -> None:
        woke["result"] = c.kv.get("py/a", index=index_a, wait="10s")

    index_a, _ = c.kv.get("py/a")
    waiter = threading.Thread(target=blocked_get)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), "a blocking query returned before any change"
    c.kv.put("py/a", "3")
    waiter.join(10)
    assert not waiter.is_alive(), "the blocking query did not wake on the change"
    new_index, woken = woke["result"]
    assert int(new_index) > int(index_a) and woken["Value"] == b"3", woke
    print("kv ok")

    # txn: all or nothing, with per-operation results.
    result = c.txn.put([
        {"KV": {"Verb": "set", "Key": "txn/x", "Value": base64.b64encode(b"x").decode()}},
        {"KV": {"Verb": "get", "Key": "py/a"}},
    ])
    assert len(result["Results"]) == 2 and base64.b64decode(result["Results"][1]["KV"]["Value"]) == b"3", result
    try:
        c.txn.put([
            {"KV": {"Verb": "set", "Key": "txn/y", "Value": base64.b64encode(b"y").decode()}},
            {"KV": {"Verb": "cas", "Key": "txn/x", "Index": 1, "Value": base64.b64encode(b"z").decode()}},
        ])
        raise AssertionError("a failing transaction was applied")
    except consul.ConsulException:
        pass
    assert c.kv.get("txn/y")[1] is None, "half a transaction was applied"
    print("txn ok")

    # catalog: register an external node and service, read them back, deregister.
    assert c.catalog.register("ext-1", "10.1.2.3", service={"Service": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"]}) is True
    _, nodes = c.catalog.nodes()
    assert {"ext-1"} <= {n["Node"] for n in nodes}, nodes
    _, services = c.catalog.services()
    assert services.get("web") == ["v1"] and "consul" in services, services
    _, instances = c.catalog.service("web")
    assert [(i["ServiceID"], i["ServicePort"], i["Address"]) for i in instances] == [("web-1", 8080, "10.1.2.3")], instances
    _, node = c.catalog.node("ext-1")
    assert node["Node"]["Address"] == "10.1.2.3" and "web-1" in node["Services"], node
    _, filtered = c.catalog.nodes(filter_expr='Node == "ext-1" and Address matches "^10\\."')
    assert [n["Node"] for n in filtered] == ["ext-1"], filtered
    datacenters = c.catalog.datacenters()
    assert datacenters == ["dc1"], datacenters
    print("catalog ok")

    # agent: self, members, a local service with a TTL check, and the check's status.
    me = c.agent.self()
    assert me["Config"]["Datacenter"] == "dc1" and me["Config"]["Server"] is True, me["Config"]
    node_name = me["Config"]["NodeName"]
    members = c.agent.members()
    assert [m["Name"] for m in members] == [node_name] and members[0]["Status"] == 1, members
    assert c.agent.service.register("api", service_id="api-1", port=9000, tags=["blue"], check=consul.check.Check.ttl("30s")) is True
    assert c.agent.services()["api-1"]["Port"] == 9000
    assert list(c.agent.services(filter_expr='"blue" in Tags')) == ["api-1"]
    assert c.agent.services(filter_expr="Port == 1") == {}
    assert c.agent.check.ttl_pass("service:api-1", notes="all good") is True
    checks = c.agent.checks()
    assert checks["service:api-1"]["Status"] == "passing" and checks["service:api-1"]["Output"] == "all good", checks
    print("agent ok")

    # health: the TTL check reaches the catalog through anti-entropy.
    deadline = time.time() + 10
    passing = []
    while time.time() < deadline:
        _, passing = c.health.service("api", passing=True)
        if passing:
            break
        time.sleep(0.1)
    assert [p["Service"]["ID"] for p in passing] == ["api-1"], passing
    assert c.agent.check.ttl_fail("service:api-1", notes="broken") is True
    deadline = time.time() + 10
    while time.time() < deadline:
        _, critical = c.health.state("critical")
        if any(ch["CheckID"] == "service:api-1" for ch in critical):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the failed TTL check never reached /v1/health/state/critical")
    _, passing = c.health.service("api", passing=True)
    assert passing == [], passing
    _, node_checks = c.health.node(node_name)
    assert any(ch["CheckID"] == "serfHealth" and ch["Status"] == "passing" for ch in node_checks), node_checks
    assert c.agent.service.deregister("api-1") is True
    print("health ok")

    # session: create, lock a key, info, list, destroy releases the lock.
    session = c.session.create(name="py-lock", ttl=30, behavior="release")
    assert c.kv.put("locks/py", "held", acquire=session) is True
    assert c.kv.get("locks/py")[1]["Session"] == session
    _, info = c.session.info(session)
    assert info["Name"] == "py-lock" and info["TTL"] == "30s", info
    _, sessions = c.session.list()
    assert session in [s["ID"] for s in sessions], sessions
    _, renewed = None, c.session.renew(session)
    assert renewed["ID"] == session, renewed
    assert c.session.destroy(session) is True
    assert c.kv.get("locks/py")[1].get("Session") is None, "destroying the session did not release the lock"
    print("session ok")

    # prepared queries: create, read, execute (entries as /v1/health/service), explain, a taken
    # name and a missing service are 400s, a query tied to a session goes with it, delete.
    created = c.query.create("web", name="py-web", tags=["v1"], ttl=10)
    query_id = created["ID"]
    stored = c.query.get(query_id)
    assert [(q["ID"], q["Name"], q["Service"]["Service"], q["Service"]["Tags"], q["DNS"]["TTL"]) for q in stored] == [
        (query_id, "py-web", "web", ["v1"], "10s")
    ], stored
    executed = c.query.execute("py-web")
    assert executed["Service"] == "web" and executed["Datacenter"] == "dc1" and executed["Failovers"] == 0, executed
    assert [(n["Node"]["Node"], n["Service"]["ID"]) for n in executed["Nodes"]] == [("ext-1", "web-1")], executed
    assert c.query.execute(query_id, limit=1)["Nodes"][0]["Service"]["Port"] == 8080
    assert c.query.explain("py-web")["Query"]["ID"] == query_id
    for bad in (lambda: c.query.create("web", name="py-web"), lambda: c.query.create("", name="no-service")):
        try:
            bad()
            raise AssertionError("a bad prepared query was accepted")
        except consul.ConsulException as error:
            assert "400" in str(error), error
    assert c.query.update(query_id, service="web", name="py-web", tags=["!v1"]) is True
    assert c.query.execute("py-web")["Nodes"] == []
    tie = c.session.create(name="py-query", ttl=30)
    tied = c.query.create("web", name="py-tied", session=tie)["ID"]
    assert c.session.destroy(tie) is True
    assert tied not in [q["ID"] for q in c.query.list()], "destroying the session kept its query"
    assert c.query.delete(query_id) is True
    assert c.query.list() == [], c.query.list()
    print("query ok")

    # event: fire, then list.
    fired = c.event.fire("deploy", "v2")
    _, events = c.event.list(name="deploy")
    assert [(e["ID"], e["Payload"]) for e in events] == [(fired["ID"], b"v2")], events
    print("event ok")

    # operator: raft configuration, autopilot, keyring.
    raft = c.operator.raft_config()
    assert [(s["Node"], s["Leader"], s["Voter"]) for s in raft["Servers"]] == [(node_name, True, True)], raft
    autopilot = c.operator.autopilot_configuration()
    assert autopilot["CleanupDeadServers"] is True and autopilot["MaxTrailingLogs"] == 250, autopilot
    health = c.operator.autopilot_health()
    assert health["Healthy"] is True and health["Servers"][0]["Leader"] is True, health
    if gossip_key:
        rings = c.operator.keyring_list()
        assert rings[0]["Keys"] == {gossip_key: 1}, rings
    print("operator ok")

    # coordinates: the agent sends its serf coordinate (the test shortens
    # sync_coordinate_interval_min) and the leader writes it; nodes() lists it by node name,
    # datacenters() names it as the WAN pool does (node.dc).
    deadline = time.time() + 30
    coords = []
    while time.time() < deadline:
        coord_index, coords = c.coordinate.nodes()
        if coords:
            break
        time.sleep(0.2)
    assert [(co["Node"], co["Segment"]) for co in coords] == [(node_name, "")], coords
    coord = coords[0]["Coord"]
    assert len(coord["Vec"]) == 8 and all(isinstance(v, (int, float)) for v in coord["Vec"]), coord
    assert coord["Error"] > 0 and coord["Height"] > 0 and isinstance(coord["Adjustment"], (int, float)), coord
    assert int(coord_index) >= 1, coord_index
    dcs = c.coordinate.datacenters()
    assert [(d["Datacenter"], d["AreaID"]) for d in dcs] == [("dc1", "wan")], dcs
    assert [co["Node"] for co in dcs[0]["Coordinates"]] == [node_name + ".dc1"], dcs
    assert len(dcs[0]["Coordinates"][0]["Coord"]["Vec"]) == 8, dcs
    print("coordinate ok")

    # operator usage: the counts match what the catalog holds. Anti-entropy may still be removing
    # the deregistered api-1, so compare against catalog reads taken just before and after.
    deadline = time.time() + 15
    while True:
        _, services = c.catalog.services()
        instances = {name: len(c.catalog.service(name)[1]) for name in services}
        node_count = len(c.catalog.nodes()[1])
        usage = c.operator.usage()
        if c.catalog.services()[1] == services or time.time() > deadline:
            break
    assert list(usage["Usage"]) == ["dc1"], usage
    dc1 = usage["Usage"]["dc1"]
    assert dc1["Services"] == len(services) >= 2, (usage, services)
    assert dc1["ServiceInstances"] == sum(instances.values()), (usage, instances)
    # Consul does not bill the servers' own "consul" service instances.
    assert dc1["BillableServiceInstances"] == sum(instances.values()) - instances["consul"], (usage, instances)
    assert dc1["Nodes"] == node_count >= 2, (usage, node_count)
    assert dc1["ConnectServiceInstances"] == {
        "connect-native": 0, "connect-proxy": 0, "ingress-gateway": 0, "mesh-gateway": 0, "terminating-gateway": 0,
    }, usage
    assert usage["KnownLeader"] is True and usage["ConsistencyLevel"] == "leader" and usage["Index"] >= 1, usage
    stale = c.operator.usage(global_=True, stale=True)
    assert list(stale["Usage"]) == ["dc1"] and stale["ConsistencyLevel"] == "stale", stale
    print("usage ok")

    # snapshot: save (a gzip tar in Consul's layout), change things, restore; the saved state is back.
    assert c.kv.put("snap/kept", "before") is True
    archive = c.snapshot.save()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["SHA256SUMS", "meta.json", "state.bin"], tar.getnames()
        meta = json.load(tar.extractfile("meta.json"))
    assert meta["Index"] >= c.kv.get("snap/kept")[1]["ModifyIndex"], meta
    assert c.kv.put("snap/kept", "after") is True
    assert c.kv.put("snap/later", "x") is True
    assert c.snapshot.restore(archive) is True
    assert c.kv.get("snap/kept")[1]["Value"] == b"before"
    assert c.kv.get("snap/later")[1] is None
    try:
        c.snapshot.restore(b"not a snapshot")
        raise AssertionError("a bad snapshot was restored")
    except consul.ConsulException as error:
        assert "500" in str(error) or "400" in str(error), error
    assert c.kv.get("snap/kept")[1]["Value"] == b"before", "a refused restore changed the state"
    print("snapshot ok")

    # Bad input is a 4xx with a message, surfaced by the client as an exception.
    try:
        c.kv.get("py/a", index="not-a-number")
        raise AssertionError("a bad index was accepted")
    except consul.ConsulException as error:
        assert "index" in str(error).lower() or "400" in str(error), error
    print("bad input ok")


if __name__ == "__main__":
    main()
    print("py-consul: all areas passed")
