# This file is part of swarmboot's LTSP plugin (package swarmboot-ltsp).
# SPDX-License-Identifier: GPL-2.0-or-later

# Publish LTSP images as swarmboot images, so clients boot them through the swarm, with
# ltsp.img (`ltsp initrd`), which the stub applies as LTSP's initramfs would; run it again
# after `ltsp initrd` or `ltsp image` (only what changed becomes a new version);
# `ltsp swarmboot pick` chooses which image which clients boot.
# @LTSP.CONF: SWARMBOOT_CONFIG SWARMBOOT_CMDLINE

swarmboot_cmdline() {
    local args

    args=$(getopt -n "ltsp $_APPLET" -o "c:C:" -l \
        "cmdline:,config:" -- "$@") ||
        usage 1
    eval "set -- $args"
    while true; do
        case "$1" in
        -c | --cmdline)
            shift
            SWARMBOOT_CMDLINE=$1
            ;;
        -C | --config)
            shift
            SWARMBOOT_CONFIG=$1
            ;;
        --)
            shift
            break
            ;;
        *) die "ltsp $_APPLET: error in cmdline: $*" ;;
        esac
        shift
    done
    run_main_functions "$_SCRIPTS" "$@"
}

swarmboot_main() {
    local config img_name img_path kernel initrd ltsp_img

    config=${SWARMBOOT_CONFIG:-/etc/swarmboot/swarmboot.toml}
    command -v swarmboot >/dev/null ||
        die "swarmboot is not installed (apt install swarmboot)"
    if [ "$1" = "pick" ]; then
        shift
        exec swarmboot pick --config "$config" "$@"
    fi
    # LTSP's own client code, ltsp.conf, the server's users and SSH host keys: the stub
    # installs it into the image's root as LTSP's initramfs would, so clients stay LTSP clients.
    ltsp_img="$TFTP_DIR/ltsp/ltsp.img"
    test -f "$ltsp_img" ||
        die "No $ltsp_img: run ltsp initrd first (clients need it to be LTSP clients)"
    if [ "$#" -eq 0 ]; then
        img_name=$(re list_img_names -i)
        set -- $img_name
        test "$#" -gt 0 ||
            die "No images in $BASE_DIR/images: create one with ltsp image"
    fi
    for img_name in "$@"; do
        img_path="$BASE_DIR/images/$img_name.img"
        kernel="$TFTP_DIR/ltsp/$img_name/vmlinuz"
        initrd="$TFTP_DIR/ltsp/$img_name/initrd.img"
        test -f "$img_path" ||
            die "No image $img_path (ltsp swarmboot publishes $BASE_DIR/images/*.img)"
        if [ ! -f "$kernel" ] || [ ! -f "$initrd" ]; then
            die "No vmlinuz and initrd.img in $TFTP_DIR/ltsp/$img_name: run ltsp kernel $img_name first"
        fi
        echo "Publishing $img_path as swarmboot image $img_name"
        re swarmboot image add "$img_name" --config "$config" --if-changed \
            --kernel "$kernel" --initrd "$initrd" --rootfs "$img_path" \
            --ltsp "$ltsp_img" --cmdline "${SWARMBOOT_CMDLINE:-}"
    done
}
