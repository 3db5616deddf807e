# The function as a container image, for Knative, Cloud Run, FunctionGraph (custom image) and any
# container platform:  docker build --platform linux/amd64 -t predeploy-backup .
# The entry point comes from FUNCTION_TARGET (webhook or event), the port from PORT.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# FunctionGraph runs custom images as UID/GID 1003 and never as root; the others accept it.
RUN groupadd --gid 1003 paas_user \
    && useradd --uid 1003 --gid 1003 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin paas_user

WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
# The code stays owned by root: the function's user can read it, not change it.
COPY . ./
RUN python -m compileall -q /app

USER 1003:1003

# Knative and Cloud Run set PORT themselves; FunctionGraph wants 8000, which is the default.
ENV FUNCTION_TARGET=webhook \
    PORT=8000
EXPOSE 8000

# server.py: waitress in front of the functions-framework app (FUNCTION_TARGET, PORT, THREADS),
# so slow clients cost a socket, not a request thread; see docs/security.md.
CMD ["python", "/app/server.py"]
