"""Where the passwords of the role set come from."""

from prep_ops import roles
from prep_ops.incident import passwords
from prep_ops.role_set import RoleSet, password_variable


def test_one_password_variable_for_kinds_roles_of_a_set_and_other_roles():
    staging = RoleSet.with_prefix("staging_")
    assert password_variable("reporter") == "PREP_OPS_REPORTER_PASSWORD"
    assert password_variable("staging_app", staging) == "PREP_OPS_APP_PASSWORD"
    assert password_variable("con-tractor; DROP", staging) == "PREP_OPS_CON_TRACTOR_DROP_PASSWORD"
    assert password_variable("---", staging) == "PREP_OPS_ROLE_PASSWORD"
    assert roles.password_variable is passwords.password_variable is password_variable
