"""The API's dependencies: the wired services and the caller, from the bearer API key."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline import accounts as account_cases
from pipeline.accounts import AccountServices, Principal
from pipeline.bootstrap import Services

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cvk_...`")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _accounts(request: Request) -> AccountServices:
    accounts: AccountServices = request.app.state.accounts
    return accounts


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return account_cases.authenticate(_accounts(request),
                                      credentials.credentials if credentials else None)


ServicesDep = Annotated[Services, Depends(_services)]
AccountsDep = Annotated[AccountServices, Depends(_accounts)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
