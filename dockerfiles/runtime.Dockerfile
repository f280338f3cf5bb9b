# envkit {{name}}: torch {{torch}}, torchvision {{torchvision}}, torchaudio {{torchaudio}},
# {{variant}} (cuDNN {{cudnn}}), Python {{python}}. Rendered by `envkit dockerfile {{name}}`.
# The official wheels bundle the CUDA runtime and cuDNN; the driver comes from the host.
# Build with BuildKit from an empty context, or a wheelhouse folder as the context:
#   DOCKER_BUILDKIT=1 docker build -f Dockerfile --build-arg ENVKIT_FIND_LINKS=/wheelhouse WHEELS
ARG BASE_IMAGE={{base_image}}
FROM ${BASE_IMAGE}

# What the image needs from the host: its GPU architectures, the oldest driver that runs its
# CUDA, and (CUDA entries) NVIDIA_REQUIRE_CUDA, checked by the NVIDIA Container Toolkit at start.
{{gpu_requirements}}

# Where the torch family comes from (the entry's index), and where everything else comes from.
ARG ENVKIT_TORCH_SOURCE="{{torch_source}}"
ARG ENVKIT_INDEX_URL=
ARG ENVKIT_EXTRA_INDEX_URL=
ARG ENVKIT_FIND_LINKS=
ARG ENVKIT_OFFLINE=
ARG ENVKIT_UID=1000

LABEL io.envkit.entry="{{name}}" \
      io.envkit.torch="{{torch}}" \
      io.envkit.torchvision="{{torchvision}}" \
      io.envkit.torchaudio="{{torchaudio}}" \
      io.envkit.cuda="{{cuda}}" \
      io.envkit.cudnn="{{cudnn}}" \
      io.envkit.python="{{python}}" \
      io.envkit.flavour="runtime"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Fail at the first step, with the fix, when the base image's Python is not the entry's.
RUN python3 -c "import sys; v='%d.%d' % sys.version_info[:2]; sys.exit(0 if v == '{{python}}' else 'base image has Python ' + v + '; entry {{name}} needs {{python}}: pass --base-image with Python {{python}}')" \
 && python3 -m venv "$VIRTUAL_ENV" \
 && useradd --create-home --uid "$ENVKIT_UID" --shell /bin/bash envkit

# Two steps: the torch family alone from the entry's source (so no other index can offer a
# different CUDA variant of the same version), then its dependencies and the entry's pins.
# The CA bundle is a BuildKit secret: mounted for this step only, never in a layer.
# Every package is pinned (==); hadolint reads the option variables as unpinned packages, and
# the variables hold option lists that must split into words.
# An index URL with credentials comes as the secret envkit-index (shell assignments of the same
# ENVKIT_* variables), never as a build arg: build args stay in the image's history and config.
# hadolint ignore=DL3013,SC1091,SC2086
RUN --mount=type=secret,id=envkit-ca \
    --mount=type=secret,id=envkit-index \
    --mount=type=bind,target=/wheelhouse \
    if [ -f /run/secrets/envkit-ca ]; then export PIP_CERT=/run/secrets/envkit-ca; fi \
 && if [ -f /run/secrets/envkit-index ]; then . /run/secrets/envkit-index; fi \
 && extra="${ENVKIT_FIND_LINKS:+--find-links $ENVKIT_FIND_LINKS} ${ENVKIT_EXTRA_INDEX_URL:+--extra-index-url $ENVKIT_EXTRA_INDEX_URL}" \
 && if [ -n "$ENVKIT_OFFLINE" ]; then torch_src="--no-index"; rest_src="--no-index"; \
    else torch_src="$ENVKIT_TORCH_SOURCE"; rest_src="${ENVKIT_INDEX_URL:+--index-url $ENVKIT_INDEX_URL}"; fi \
 && pip install --no-deps $torch_src $extra {{source_packages}} \
 && pip install $rest_src $extra {{torch_packages}}{{pins}}

# An image that does not import is not an image: check the versions the entry promises.
RUN python -c "{{import_check}}"

USER ${ENVKIT_UID}
WORKDIR /workspace
CMD ["python"]
