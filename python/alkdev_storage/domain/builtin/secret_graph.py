"""The built-in secret graph (``secret-graph``): vaults holding secrets,
and who may use them. A ``secret``'s ``value`` is encrypted at rest
(AES-256-GCM, :mod:`alkdev_storage.domain.secrets`); everything else
(name, kind, description, expiry, tags) is plain metadata that can be
listed without a key.

Node types: ``vault`` (a group of secrets; vaults nest), ``secret`` (one
secret value and its metadata), ``principal`` (a reference to who may use
secrets: an account, an agent, a service or a role of the ACL graph).
Edge types: ``contains`` (vault -> vault, vault -> secret), ``grants``
(principal -> vault or secret, with a ``permission``) and ``replaces``
(secret -> the secret it superseded, for rotation of the secret itself).

Writing a secret goes through :func:`seal_attributes`, which encrypts the
plaintext of every encrypted field for the row it is written to (the
graph store does this on every node and edge write);
:func:`reveal_attributes` decrypts them. The helpers are generic: they
work for any module's encrypted fields.

Registered as a system-scope graph type in every tenant file. Change it
only with a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field, SecretBytes, SecretStr

from alkdev_storage.domain.modules import (
    Attributes,
    EdgeType,
    GraphTypeModule,
    NodeType,
    encrypted_fields,
)
from alkdev_storage.domain.secrets import (
    Binding,
    EncryptedData,
    KeyProvider,
    decrypt,
    decrypt_text,
    encrypt,
)
from alkdev_storage.errors import ValidationFailed

__all__ = [
    "SECRET_GRAPH",
    "ContainsAttributes",
    "GrantsAttributes",
    "PrincipalRefAttributes",
    "ReplacesAttributes",
    "SecretAttributes",
    "SecretKind",
    "SecretSealer",
    "VaultAttributes",
    "reveal_attributes",
    "seal_attributes",
]

Name = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]

SecretKind = Literal[
    "password", "api_key", "token", "certificate", "private_key", "connection_string",
    "ssh_key", "generic",
]
"""What a secret is, for display and policy (not for its encryption)."""


class VaultAttributes(Attributes):
    """A group of secrets (and of other vaults)."""

    name: Name
    description: str | None = None


class SecretAttributes(Attributes):
    """One secret: its encrypted ``value`` and plain metadata.
    ``content_type`` says how to read the decrypted value (``text/plain``,
    ``application/json``, ``application/x-pem-file``...)."""

    # A plaintext given here by mistake must not be quoted by pydantic's
    # own error messages.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Name
    value: EncryptedData
    kind: SecretKind = "generic"
    description: str | None = None
    content_type: Annotated[str, Field(max_length=128)] = "text/plain"
    expires_at: AwareDatetime | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=64)


class PrincipalRefAttributes(Attributes):
    """Who may use secrets: ``ref`` is the id of an account, agent,
    service or role (as in the ACL graph)."""

    kind: Literal["account", "agent", "service", "role"]
    ref: Annotated[str, Field(min_length=1, max_length=512)]
    display_name: Annotated[str, Field(max_length=200)] | None = None


class ContainsAttributes(Attributes):
    """A vault holds a secret or another vault."""


class GrantsAttributes(Attributes):
    """A principal may ``read`` (decrypt), ``write`` (set the value) or
    ``admin`` (also grant) the target vault's secrets or the target
    secret, until ``expires_at`` when set."""

    permission: Literal["read", "write", "admin"] = "read"
    expires_at: AwareDatetime | None = None


class ReplacesAttributes(Attributes):
    """The source secret superseded the target secret (which may be kept
    for a grace period, until ``until``)."""

    until: AwareDatetime | None = None


SECRET_GRAPH = GraphTypeModule(
    name="secret-graph",
    version="1.0.0",
    description="Vaults of encrypted secrets and the principals that may use them.",
    node_types=(
        NodeType("vault", VaultAttributes, "a group of secrets and vaults"),
        NodeType("secret", SecretAttributes, "one secret; its value is encrypted"),
        NodeType("principal", PrincipalRefAttributes, "who may use secrets"),
    ),
    edge_types=(
        EdgeType("contains", ContainsAttributes, "a vault holds a secret or a vault"),
        EdgeType("grants", GrantsAttributes, "a principal may use a vault or a secret"),
        EdgeType("replaces", ReplacesAttributes, "a secret superseded another"),
    ),
    triples=frozenset({
        ("vault", "contains", "vault"),
        ("vault", "contains", "secret"),
        ("principal", "grants", "vault"),
        ("principal", "grants", "secret"),
        ("secret", "replaces", "secret"),
    }),
)
"""The secret graph module, version 1.0.0."""


# ---------------------------------------------------------------------------
# Sealing and revealing encrypted attributes (any module)
# ---------------------------------------------------------------------------


def _binding(base: tuple[str, str, str], field: str) -> Binding:
    if not (isinstance(base, tuple) and len(base) == 3):
        raise ValidationFailed("binding_base must be a tuple (org_id, table, row_id)")
    org_id, table, row_id = base
    return Binding(org_id, table, f"attributes.{field}", row_id)


def _as_envelope(value: object) -> EncryptedData | None:
    """``value`` as an envelope when it is one (an EncryptedData, or a
    ``str`` in the envelope format, e.g. attributes read back from the
    database); None when it is a plaintext."""
    if isinstance(value, EncryptedData):
        return value
    if isinstance(value, str):
        try:
            return EncryptedData(value)
        except ValidationFailed:
            return None
    return None


def _seal_value(value: object, where: Binding, provider: KeyProvider) -> EncryptedData:
    """One secret value sealed for ``where`` (see :func:`seal_attributes`)."""
    envelope = None if isinstance(value, SecretStr | SecretBytes) else _as_envelope(value)
    if envelope is not None:
        decrypt(envelope, where, provider)  # DecryptionFailed if it belongs elsewhere
        return envelope
    if isinstance(value, str | bytes | bytearray | memoryview | SecretStr | SecretBytes):
        return encrypt(value, where, provider)
    raise ValidationFailed(
        f"{where.column}: a secret must be given as str, bytes, SecretStr, SecretBytes or "
        f"EncryptedData, not {type(value).__name__}",
        field=where.column,
    )


def seal_attributes(
    module: GraphTypeModule,
    type_name: str,
    attributes: Mapping[str, Any] | None,
    binding_base: tuple[str, str, str],
    provider: KeyProvider,
) -> tuple[dict[str, Any], int | None]:
    """Encrypt the plaintext values of ``type_name``'s encrypted fields for
    the row ``binding_base = (org_id, table, row_id)`` (each field ``f``
    bound to column ``attributes.f``). Returns the attributes to validate
    and store (a new dict; other fields untouched) and the lowest key
    version among the encrypted values (the row's ``key_version``; None
    when it holds none).

    A plaintext is a ``str`` (not in the envelope format), ``bytes``,
    ``SecretStr`` or ``SecretBytes`` (use the ``Secret*`` forms to store a
    plaintext that happens to look like an envelope). An envelope (an
    :class:`EncryptedData`, or a ``str`` in its format, e.g. attributes
    read back and written again) is kept as it is after decrypting it with
    this row's binding: a ciphertext copied from another row, column,
    table or tenant is refused with DecryptionFailed, and nothing is ever
    encrypted twice. ``None`` or a missing field is left to the model."""
    fields = encrypted_fields(module, type_name)
    attrs = dict(attributes or {})
    versions: list[int] = []
    for field in fields:
        if attrs.get(field) is None:
            continue
        envelope = _seal_value(attrs[field], _binding(binding_base, field), provider)
        attrs[field] = envelope
        versions.append(envelope.key_version)
    return attrs, (min(versions) if versions else None)


class SecretSealer:
    """The graph store's sealer: ``GraphStore(..., sealer=SecretSealer(provider))``
    seals every secret attribute of a node or edge write for the row it is
    written to, as :func:`seal_attributes` does for one field: plaintext
    (``str``, ``bytes``, ``SecretStr``, ``SecretBytes``) is encrypted under
    the provider's current key; an envelope is checked by decrypting it
    with the row's binding and kept (a ciphertext copied from elsewhere is
    refused with DecryptionFailed)."""

    __slots__ = ("provider",)

    checks_envelopes = True
    """The graph store hands this sealer ``EncryptedData`` values too."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    def __call__(self, plaintext: object, *, org_id: str, table: str, column: str,
                 row_id: str) -> EncryptedData:
        """Seal one value for ``(org_id, table, column, row_id)``."""
        return _seal_value(plaintext, Binding(org_id, table, column, row_id), self.provider)

    def __repr__(self) -> str:
        return f"SecretSealer({self.provider!r})"


def reveal_attributes(
    module: GraphTypeModule,
    type_name: str,
    attributes: Mapping[str, Any],
    binding_base: tuple[str, str, str],
    provider: KeyProvider,
    *,
    as_bytes: bool = False,
    wrap: bool = True,
) -> dict[str, Any]:
    """Decrypt ``type_name``'s encrypted fields in ``attributes`` (as
    stored for the row ``binding_base``). Returns a new dict whose
    decrypted values are ``SecretStr`` (``SecretBytes`` with ``as_bytes``)
    so that printing or logging them shows ``**********``; ``wrap=False``
    gives plain ``str``/``bytes``. Fields that are None or missing stay as
    they are. Raises DecryptionFailed / UnknownKeyVersion as
    :func:`~alkdev_storage.domain.secrets.decrypt`; SecretError when a
    value is not UTF-8 text and ``as_bytes`` is False."""
    fields = encrypted_fields(module, type_name)
    revealed = dict(attributes)
    for field in fields:
        value = revealed.get(field)
        if value is None:
            continue
        where = _binding(binding_base, field)
        plain: str | bytes
        if as_bytes:
            plain = decrypt(value, where, provider)
            revealed[field] = SecretBytes(plain) if wrap else plain
        else:
            plain = decrypt_text(value, where, provider)
            revealed[field] = SecretStr(plain) if wrap else plain
    return revealed
