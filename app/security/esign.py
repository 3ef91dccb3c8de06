"""Electronic signatures on review decisions and overrides, and the roles that back them.

A decision (approve, reject) or an override is signed by the acting person's personal key
(:class:`~app.security.identity.PersonalKeys`) over every field of the record except the free
text (comment, reason: it may name the patient, so it stays in the vault and never travels):
type, case pseudonym, mesh and QA SHA-256, meaning (one of a fixed list, see
:mod:`app.security.access`), the signer's account, printed name and role, the time, the signer
key's fingerprint and the ids of the overrides a decision rests on.

A signature counts only when it verifies with the signer's public key *as the verified roles
chain* (:mod:`app.security.roles`) knows it, and that chain gives the signer the role the record
needs: reviewer for an approval or rejection, administrator for an override and for a
self-approved decision. A record written by anyone else (a technician editing the vault's files)
therefore fails, and so does a record whose name, role or hashes were changed.

A package carries the prefix of the roles chain that shows every signer's role
(:func:`roles_bundle`) with the vault's founder fingerprint; the receiver checks it back to a
lab key it trusts (:func:`open_bundle`).
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from app.errors import MedPrintError
from app.security import access
from app.security.identity import PersonalKeys, printed_name
from app.security.roles import RolesState, canonical, verify_chain

_CONTEXT = b"medprint-esign-1\n"
UNSIGNED_FIELDS = frozenset({"signature", "kept_in_vault", *access.FREE_TEXT_FIELDS})
SIGNER_FIELDS = ("signer", "printed_name", "role", "signer_key")
BUNDLE_FORMAT = "medprint-roles-1"

# Why a signed record or a roles bundle is not accepted (package verify reports these codes).
UNSIGNED = "decision-unsigned"
BAD_SIGNATURE = "decision-signature"
UNKNOWN_SIGNER = "signer-unknown"
WRONG_ROLE = "signer-role"
NO_ROLES = "no-roles"
BAD_ROLES = "roles-chain"
LAB_UNTRUSTED = "lab-untrusted"


@dataclass(frozen=True)
class Invalid:
    """Why a record or bundle is not accepted: a stable code and one line for people."""

    code: str
    message: str


def needed_role(record: Mapping[str, object]) -> str:
    """The role a record's signer must hold: administrator for overrides and self-approvals,
    reviewer for every other decision."""
    if record.get("type") == "override" or record.get("meaning") == access.SELF_APPROVED:
        return access.ADMINISTRATOR
    return access.REVIEWER


def signed_bytes(record: Mapping[str, object]) -> bytes:
    """What a signature covers: the record without its signature and free text."""
    body = {k: v for k, v in record.items() if k not in UNSIGNED_FIELDS}
    return _CONTEXT + canonical(body)


def sign(record: Mapping[str, object], keys: PersonalKeys, role: str) -> dict:
    """``record`` signed by ``keys`` as holder of ``role`` (adds the signer's fields)."""
    body = {k: v for k, v in record.items() if k != "signature"} | {
        "signer": keys.user,
        "printed_name": printed_name(keys.user),
        "role": role,
        "signer_key": keys.public.fingerprint,
    }
    signature = base64.b64encode(keys.sign(signed_bytes(body))).decode("ascii")
    return body | {"signature": signature}


def check(record: Mapping[str, object], state: RolesState) -> Invalid | None:
    """None when ``record`` carries a good signature by someone who holds the needed role in
    ``state``; else why not."""
    what = _what(record)
    if "signature" not in record:
        msg = f"not reviewed (unsigned {what} from an older version: review again)"
        return Invalid(UNSIGNED, msg)
    user, role = str(record.get("signer")), needed_role(record)
    identity = state.identities.get(user)
    if identity is None or identity.fingerprint != record.get("signer_key"):
        msg = f"the {what} names signer '{user}', whose key is not enrolled in the lab's roles; "
        msg += "it does not count: ask a reviewer to review again"
        return Invalid(UNKNOWN_SIGNER, msg)
    try:
        signature = base64.b64decode(str(record["signature"]), validate=True)
    except ValueError:
        signature = b""
    if not identity.signing_key.verify(signature, signed_bytes(record)):
        msg = f"the {what} signed by '{user}' fails its signature (changed after signing, or "
        msg += "forged): it does not count; ask a reviewer to review again"
        return Invalid(BAD_SIGNATURE, msg)
    if record.get("role") != role or role not in state.roles.get(user, set()):
        msg = f"the {what} is signed by '{user}', who does not hold the {role} role it needs; "
        msg += "it does not count"
        return Invalid(WRONG_ROLE, msg)
    return None


def _what(record: Mapping[str, object]) -> str:
    if record.get("type") == "override":
        return f"{record.get('kind')} override"
    return "decision"


# --- the roles a package carries ----------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """A vault's verified roles (who holds which role with which key), the statements that
    prove them, and what anchors them: the vault id and the founder's key fingerprint."""

    state: RolesState
    statements: list[dict]
    vault_id: str
    founder: str

    def bundle(self, signers: Iterable[str]) -> dict:
        """What a package carries to show the roles of ``signers`` (see :func:`roles_bundle`)."""
        return roles_bundle(
            self.statements, vault_id=self.vault_id, founder=self.founder, signers=signers
        )


def roles_bundle(
    statements: list[dict], *, vault_id: str, founder: str, signers: Iterable[str]
) -> dict:
    """The roles chain up to the last statement about any of ``signers`` (public keys only),
    with what anchors it: the vault id and the founder's key fingerprint."""
    wanted = set(signers)
    last = max(
        (n for n, s in enumerate(statements, 1) if s.get("subject", {}).get("user") in wanted),
        default=0,
    )
    if wanted and not last:
        msg = "no signer of this package's records holds a role in the vault; nothing to send"
        raise MedPrintError(msg)
    return {
        "format": BUNDLE_FORMAT,
        "vault_id": vault_id,
        "founder": founder,
        "statements": statements[:last],
    }


def open_bundle(
    bundle: object, trusted: Collection[str], revoked: Collection[str] = ()
) -> RolesState | Invalid:
    """The verified roles a package carries, when they chain back to a trusted lab key
    (``trusted``: fingerprints; ``revoked`` ones never count)."""
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        msg = "the package carries no readable roles record (roles.json), so nothing shows who "
        msg += "signed its approval in which role; ask the sender to rebuild it"
        return Invalid(NO_ROLES, msg)
    founder = str(bundle.get("founder"))
    if founder in revoked or founder not in trusted:
        msg = f"the package's lab key (founder {founder[:16]}) is not one of your trusted keys; "
        msg += "confirm its fingerprint with the sending lab, then pass it with --trusted-key"
        return Invalid(LAB_UNTRUSTED, msg)
    statements = bundle.get("statements")
    vault_id = str(bundle.get("vault_id"))
    try:
        if not isinstance(statements, list):
            raise TypeError
        return verify_chain(statements, vault_id=vault_id, founder_fingerprint=founder)
    except (MedPrintError, TypeError, ValueError, KeyError, AttributeError):
        msg = "the package's role statements do not chain back to its lab key (edited, forged or "
        msg += "re-ordered); do not use this package"
        return Invalid(BAD_ROLES, msg)
