"""Who a request acts as: the user of its bearer token (`runsheet token create USER`); 401 without a known one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="a token from `runsheet token create USER`")


def _user(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The user the request's bearer token acts as; 401 without a known token."""
    if credentials is None:
        raise HTTPException(401, "no token", headers={"WWW-Authenticate": "Bearer"})
    found = request.app.state.runsheet.user_for(credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return str(found)


User = Annotated[str, Depends(_user)]
