# gitops-reconciler controller image. Build from the repository root:
#   docker build -t ghcr.io/ahoi/gitops-reconciler:0.1.0 .
# Pinned to a precise tag (Python patch release and Debian release). No digest: none was
# documented anywhere this was written; pin one with `docker buildx imagetools inspect`.
FROM python:3.11.11-slim-bookworm

# RECONCILER_LAYOUT_DIR: reconciler/app.py layout_root() looks for repo-layout/ next to
# the package first, which an installed (site-packages) copy does not have; `init` and
# the seeding of a new config repo read the skeleton from here instead.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RECONCILER_LAYOUT_DIR=/usr/share/gitops-reconciler/repo-layout

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it and the
# Deployment's runAsUser/fsGroup match it. /srv/git is for docker-compose.yml: a new named
# volume mounted there takes this directory's owner and mode, so the reconciler writes
# and the Git server containers read.
RUN groupadd --system --gid 10001 reconciler \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/reconciler \
      --no-create-home --shell /usr/sbin/nologin reconciler \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/reconciler \
 && install -d -o 10001 -g 10001 -m 0755 /srv/git

# Commit signing runs the same programs git does: `--sign ssh:KEY` needs ssh-keygen
# (openssh-client), `--sign gpg:ID` needs gpg and its agent. No recommends, no lists kept.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client gpg gpg-agent \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY reconciler /src/reconciler
RUN pip install /src && rm -rf /src

COPY repo-layout /usr/share/gitops-reconciler/repo-layout

USER 10001:10001
WORKDIR /var/lib/reconciler
# /healthz, /readyz and /metrics of `run --source kubernetes`
EXPOSE 8080

ENTRYPOINT ["reconciler"]
CMD ["--log-format", "json", "run", "--source", "kubernetes", "--repo", "/var/lib/reconciler/config.git"]
