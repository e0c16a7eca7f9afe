"""databricks-sdk identity APIs (SCIM users, groups, service principals, current user, token
management) against the running binary."""

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, PermissionDenied, ResourceAlreadyExists
from databricks.sdk.service import iam

from conftest import ADMIN_TOKEN


@pytest.fixture(scope="module")
def w(server):
    return WorkspaceClient(host=server.host, token=ADMIN_TOKEN)


def test_users_groups_service_principals(w):
    me = w.current_user.me()
    assert me.user_name == "admin"
    assert "admins" in [g.display for g in me.groups]

    u = w.users.create(user_name="dana@example.com", display_name="Dana")
    assert u.id and u.user_name == "dana@example.com"
    with pytest.raises(ResourceAlreadyExists):
        w.users.create(user_name="dana@example.com")
    found = list(w.users.list(filter='userName eq "dana@example.com"'))
    assert [x.id for x in found] == [u.id]
    assert "admin" in [x.user_name for x in w.users.list()]

    sp = w.service_principals.create(display_name="reporting app")
    assert sp.application_id
    g = w.groups.create(display_name="analysts", members=[iam.ComplexValue(value=u.id)])
    w.groups.patch(
        g.id,
        operations=[iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": sp.id}])],
        schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP],
    )
    members = {m.value for m in w.groups.get(g.id).members}
    assert members == {u.id, sp.id}
    assert [x.display_name for x in w.groups.list(filter='displayName eq "analysts"')] == ["analysts"]

    w.users.delete(u.id)
    with pytest.raises(NotFound):
        w.users.get(u.id)


def test_token_management_on_behalf_of_a_service_principal(w, server):
    sp = w.service_principals.create(display_name="chat app")
    obo = w.token_management.create_obo_token(application_id=sp.application_id, lifetime_seconds=3600, comment="app")
    assert obo.token_value and obo.token_info.token_id
    as_sp = WorkspaceClient(host=server.host, token=obo.token_value)
    assert as_sp.current_user.me().id == sp.id
    assert isinstance(list(as_sp.serving_endpoints.list()), list), "a service principal may read"
    with pytest.raises(PermissionDenied):
        as_sp.users.create(user_name="not-allowed@example.com")

    infos = [t for t in w.token_management.list() if t.token_id == obo.token_info.token_id]
    assert len(infos) == 1 and infos[0].comment == "app"
    w.token_management.delete(obo.token_info.token_id)
    with pytest.raises(Exception):
        as_sp.current_user.me()


def test_endpoint_permissions_through_the_sdk(w, server):
    from databricks.sdk.service import serving

    w.secrets.create_scope(scope="perm")
    w.secrets.put_secret(scope="perm", key="k", string_value="sk-perm")
    ep = w.serving_endpoints.create_and_wait(
        name="perm-chat",
        config=serving.EndpointCoreConfigInput(name="perm-chat", served_entities=[serving.ServedEntityInput(
            external_model=serving.ExternalModel(provider=serving.ExternalModelProvider.OPENAI, name="gpt-4o", task="llm/v1/chat",
                                                 openai_config=serving.OpenAiConfig(openai_api_key="{{secrets/perm/k}}")))]))
    sp = w.service_principals.create(display_name="perm app")
    acl = w.serving_endpoints.set_permissions(ep.id, access_control_list=[
        serving.ServingEndpointAccessControlRequest(service_principal_name=sp.application_id,
                                                    permission_level=serving.ServingEndpointPermissionLevel.CAN_VIEW)])
    assert acl.object_id == f"/serving-endpoints/{ep.id}"
    levels = {e.service_principal_name: e.all_permissions[0].permission_level for e in acl.access_control_list if e.service_principal_name}
    assert levels == {sp.application_id: serving.ServingEndpointPermissionLevel.CAN_VIEW}

    token = w.token_management.create_obo_token(application_id=sp.application_id).token_value
    as_sp = WorkspaceClient(host=server.host, token=token)
    assert as_sp.serving_endpoints.get("perm-chat").permission_level == serving.ServingEndpointDetailedPermissionLevel.CAN_VIEW
    with pytest.raises(PermissionDenied):
        as_sp.serving_endpoints.patch("perm-chat", add_tags=[serving.EndpointTag(key="k", value="v")])

    w.serving_endpoints.update_permissions(ep.id, access_control_list=[
        serving.ServingEndpointAccessControlRequest(service_principal_name=sp.application_id,
                                                    permission_level=serving.ServingEndpointPermissionLevel.CAN_MANAGE)])
    as_sp.serving_endpoints.patch("perm-chat", add_tags=[serving.EndpointTag(key="k", value="v")])
    got = w.serving_endpoints.get_permissions(ep.id)
    assert any(e.group_name == "admins" and e.all_permissions[0].inherited for e in got.access_control_list)
    names = [l.permission_level.value for l in w.serving_endpoints.get_permission_levels(ep.id).permission_levels]
    assert names == ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]

    w.serving_endpoints.set_permissions(ep.id, access_control_list=[])
    with pytest.raises(NotFound):
        as_sp.serving_endpoints.get("perm-chat")


def test_secret_acls_through_the_sdk(w, server):
    from databricks.sdk.service import workspace

    w.secrets.create_scope(scope="acl-scope")
    w.secrets.put_secret(scope="acl-scope", key="k", string_value="v")
    w.groups.create(display_name="acl-readers")
    w.secrets.put_acl(scope="acl-scope", principal="acl-readers", permission=workspace.AclPermission.READ)
    assert w.secrets.get_acl(scope="acl-scope", principal="acl-readers").permission == workspace.AclPermission.READ
    items = {a.principal: a.permission for a in w.secrets.list_acls(scope="acl-scope")}
    assert items == {"admin": workspace.AclPermission.MANAGE, "acl-readers": workspace.AclPermission.READ}

    sp = w.service_principals.create(display_name="acl app")
    as_sp = WorkspaceClient(host=server.host, token=w.token_management.create_obo_token(application_id=sp.application_id).token_value)
    with pytest.raises(PermissionDenied):
        list(as_sp.secrets.list_secrets(scope="acl-scope"))
    w.secrets.put_acl(scope="acl-scope", principal=sp.application_id, permission=workspace.AclPermission.READ)
    assert [s.key for s in as_sp.secrets.list_secrets(scope="acl-scope")] == ["k"]
    w.secrets.delete_acl(scope="acl-scope", principal="acl-readers")
    assert "acl-readers" not in {a.principal for a in w.secrets.list_acls(scope="acl-scope")}
