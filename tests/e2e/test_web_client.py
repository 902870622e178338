"""What the web client relies on, through the running service: creating without a body, the title from the first question, the running answer in GET and the
stopped answer's status, admin users."""

from __future__ import annotations

import httpx
import pytest

from dev.standins import new_token

from .api import Service, bearer, events_as_they_come, user_id_of


async def test_reload_mid_answer_stop_and_admin_users(service: Service, http: httpx.AsyncClient, stored) -> None:
    token = new_token()
    me = bearer(token)
    created = await http.post("/api/conversations", headers=me)  # no body: the defaults
    assert created.status_code == 201
    url = f"/api/conversations/{created.json()['id']}"

    body = {"content": "tokens=200 delay=20", "thinking_mode": True, "force_web_search": True}
    async with http.stream("POST", f"{url}/messages", json=body, headers=me) as running:
        relayed = 0
        async for event in events_as_they_come(running):
            if "token" not in event.data:
                continue
            relayed += 1
            if relayed == 3:
                shown = (await http.get(url, headers=me)).json()["messages"][-1]  # a reload
                assert (shown["role"], shown["status"]) == ("assistant", "generating")
                assert shown["content"].startswith("tok0 tok1 tok2 ")
                assert (await http.post(f"{url}/stop", headers=me)).json() == {"stopped": True}
    conversation = (await http.get(url, headers=me)).json()
    assert conversation["title"] == "tokens=200 delay=20"  # titled by the question, stored with it
    messages = conversation["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [("user", "complete"), ("assistant", "stopped")]
    assert messages[1]["id"] == shown["id"]
    assert [r["id"] for r in await stored.messages(created.json()["id"])] == [m["id"] for m in messages]

    assert (await http.get("/api/admin/users", headers=me)).status_code == 403
    listed = await http.get("/api/admin/users?limit=1000", headers=bearer(new_token(admin=True)))
    assert listed.status_code == 200, listed.text
    mine = [u for u in listed.json()["items"] if u["id"] == user_id_of(token)]
    assert mine == [
        {"id": user_id_of(token), "email": None, "name": None, "provider": None, "created_at": None,
         "last_login_at": None, "conversation_count": 1, "message_count": 2}
    ]
    totals = listed.json()["totals"]
    assert totals["users"] >= 1 and totals["conversations"] >= 1 and totals["messages"] >= 2
