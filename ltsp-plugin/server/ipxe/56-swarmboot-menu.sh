# This file is part of swarmboot's LTSP plugin (package swarmboot-ltsp).
# SPDX-License-Identifier: GPL-2.0-or-later

# Add a "swarmboot" entry to the iPXE menu that `ltsp ipxe` generates: it chains to the
# swarmboot server's boot script over HTTP, which boots the image swarmboot assigns to the
# client (see `ltsp swarmboot pick`). Runs after 55-ipxe.sh; running it again changes nothing.
# The label goes before :memtest, after a `boot || goto failed` line, so no other entry's
# labels fall through into it.
# @LTSP.CONF: SWARMBOOT_URL SWARMBOOT_DEFAULT SWARMBOOT_TITLE

swarmboot_menu_main() {
    local file url title

    file="$TFTP_DIR/ltsp/ltsp.ipxe"
    test -f "$file" || return 0
    # ${srv} is iPXE's: the server that answered PXE (this LTSP server).
    url=${SWARMBOOT_URL:-}
    test -n "$url" || url='http://${srv}:8080'
    title=${SWARMBOOT_TITLE:-Boot through the swarm (swarmboot)}
    if ! grep -q '^:swarmboot$' "$file"; then
        re sed -i "$file" -e "/^item --gap *Other options:/i\\
item --key w swarmboot          $title" -e "/^:memtest\$/i\\
:swarmboot\\
# swarmboot picks the image for this client (ltsp swarmboot pick)\\
chain --replace --autofree $url/boot.ipxe?mac=\${net0/mac}\&arch=\${buildarch}\&uuid=\${uuid} || goto failed\\
"
        echo "Added the swarmboot entry to $file"
    fi
    # The default entry: before per-client sections, which may still choose another image.
    re sed -i '/^set img swarmboot # SWARMBOOT_DEFAULT$/d' "$file"
    if [ "$SWARMBOOT_DEFAULT" = "1" ]; then
        re sed -i "$file" -e '/^goto ${mac} || goto start$/i\
set img swarmboot # SWARMBOOT_DEFAULT'
    fi
}
