"""OpenAPI generation details: every operation documents ao's error responses in one shape."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from sessions.api.serializers import ErrorSerializer

ERROR_STATUSES = {
    "400": "Invalid input; `error.field` names the field.",
    "401": "No credentials, or a bad or revoked token.",
    "403": "Your role in the project does not allow this.",
    "404": "No such project, session or object visible to you.",
    "405": "Method not allowed.",
    "406": "Only JSON is served.",
    "409": "Refused in the current state (e.g. not mergeable: `error.blockers`).",
    "413": "The request body is too large.",
    "415": "Send JSON.",
    "429": "Too many requests for this token; see Retry-After.",
    "502": "A plugin's service (tracker, SCM) failed.",
    "503": "A plugin's service is temporarily unavailable; retry later.",
}


class AoAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in ERROR_STATUSES.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sessions.api.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "a user API token: `ao token create NAME`"}


class SessionTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sessions.api.auth.SessionTokenAuthentication"
    name = "agentSessionToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-AO-Session",
            "description": "an agent's own session id, with its AO_TOKEN as `Authorization: Bearer`",
        }


class BrowserSessionScheme(OpenApiAuthenticationExtension):
    target_class = "sessions.api.auth.CsrfSessionAuthentication"
    name = "browserSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
