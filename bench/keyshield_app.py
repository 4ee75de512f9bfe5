"""The Python original (keyshield) on the benchmark route, for bench/http.sh.

FastAPI + keyshield's CachedApiKeyService (shared in-memory cache,
min_delay=0, max_delay=0) over SQLAlchemy/aiosqlite, a GET /protected route
requiring scope `write`, uvicorn with one worker. Writes the key it created
to the file named by KEY_FILE so the load generator can use it.
"""

import asyncio
import os
import sys

import aiocache
import uvicorn
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from keyshield.api import create_depends_api_key
from keyshield.hasher.argon2 import Argon2ApiKeyHasher
from keyshield.repositories.sql import SqlAlchemyApiKeyRepository
from keyshield.services.cached import CachedApiKeyService

DB = os.environ["DB_PATH"]
KEY_FILE = os.environ["KEY_FILE"]
PORT = int(os.environ.get("PORT", "18003"))

engine = create_async_engine(f"sqlite+aiosqlite:///{DB}")
sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
hasher = Argon2ApiKeyHasher(pepper="bench-pepper")
cache = aiocache.SimpleMemoryCache()


def service(session: AsyncSession) -> CachedApiKeyService:
    repo = SqlAlchemyApiKeyRepository(session)
    return CachedApiKeyService(repo=repo, hasher=hasher, cache=cache, min_delay=0, max_delay=0)


async def inject_service():
    async with sessions() as session:
        async with session.begin():
            yield service(session)


security = create_depends_api_key(inject_service, required_scopes=["write"])
app = FastAPI()


@app.get("/protected")
async def protected(api_key=Depends(security)):
    return {"message": "This is protected data", "id": api_key.id_}


async def setup() -> None:
    async with sessions() as session:
        repo = SqlAlchemyApiKeyRepository(session)
        await repo.ensure_table(engine)
        _, key = await service(session).create(name="bench", scopes=["write"])
        await session.commit()
    with open(KEY_FILE, "w") as f:
        f.write(key)


if __name__ == "__main__":
    asyncio.run(setup())
    print("keyshield ready", file=sys.stderr)
    uvicorn.run(app, host="127.0.0.1", port=PORT, workers=1, log_level="warning", access_log=False)
