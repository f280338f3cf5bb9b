# envkit {{name}}: torch {{torch}}, torchvision {{torchvision}}, torchaudio {{torchaudio}},
# {{variant}} (cuDNN {{cudnn}}), Python {{python}}, with the CUDA {{cuda}} toolkit (nvcc) for
# building CUDA extensions. Rendered by `envkit dockerfile {{name}}`.
# nvidia/cuda devel tags are deleted after their end of life, so the toolkit comes from
# NVIDIA's apt repository onto a plain Ubuntu base, whose python3 is the entry's Python.
ARG BASE_IMAGE={{base_image}}
FROM ${BASE_IMAGE}

# What the image needs from the host: its GPU architectures, the oldest driver that runs its
# CUDA, and (CUDA entries) NVIDIA_REQUIRE_CUDA, checked by the NVIDIA Container Toolkit at start.
{{gpu_requirements}}

ARG ENVKIT_TORCH_SOURCE="{{torch_source}}"
ARG ENVKIT_INDEX_URL=
ARG ENVKIT_EXTRA_INDEX_URL=
ARG ENVKIT_FIND_LINKS=
ARG ENVKIT_OFFLINE=
ARG ENVKIT_UID=1000
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/{{ubuntu_repo}}/x86_64

LABEL io.envkit.entry="{{name}}" \
      io.envkit.torch="{{torch}}" \
      io.envkit.torchvision="{{torchvision}}" \
      io.envkit.torchaudio="{{torchaudio}}" \
      io.envkit.cuda="{{cuda}}" \
      io.envkit.cudnn="{{cudnn}}" \
      io.envkit.python="{{python}}" \
      io.envkit.flavour="devel"

ENV DEBIAN_FRONTEND=noninteractive \
    CUDA_HOME=/usr/local/cuda-{{cuda}} \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/cuda-{{cuda}}/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The toolkit's version is pinned by the package names (cuda-nvcc-X-Y); Ubuntu's own
# packages float with the release's security updates.
# hadolint ignore=DL3008,SC2086
RUN --mount=type=secret,id=envkit-ca \
    ca=""; if [ -f /run/secrets/envkit-ca ]; then ca="-o Acquire::https::CAInfo=/run/secrets/envkit-ca"; fi \
 && apt-get $ca update \
 && apt-get $ca install -y --no-install-recommends ca-certificates curl gnupg python3 python3-venv \
 && curl ${ca:+--cacert /run/secrets/envkit-ca} -fsSL "$CUDA_REPO/3bf863cc.pub" \
    | gpg --dearmor -o /usr/share/keyrings/cuda-archive.gpg \
 && echo "deb [signed-by=/usr/share/keyrings/cuda-archive.gpg] $CUDA_REPO/ /" > /etc/apt/sources.list.d/cuda.list \
 && apt-get $ca update \
 && apt-get $ca install -y --no-install-recommends {{cuda_apt_packages}} \
 && rm -rf /var/lib/apt/lists/*

RUN python3 -c "import sys; v='%d.%d' % sys.version_info[:2]; sys.exit(0 if v == '{{python}}' else 'base image has Python ' + v + '; entry {{name}} needs {{python}}: pass --base-image with Python {{python}}')" \
 && python3 -m venv "$VIRTUAL_ENV" \
 && useradd --create-home --uid "$ENVKIT_UID" --shell /bin/bash envkit

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

RUN python -c "{{import_check}}" && nvcc --version

USER ${ENVKIT_UID}
WORKDIR /workspace
CMD ["python"]
