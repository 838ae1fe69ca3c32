# The Debian package (docs/packaging.md): `cpack -G DEB` in a build dir makes
# confdr_<version>-<release>_<arch>.deb and confdr-sims_..., whatever the
# build's CMAKE_INSTALL_PREFIX (a package installs under /usr).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME confdr)
set(CPACK_PACKAGE_VENDOR "confdr")
set(CPACK_PACKAGE_CONTACT "confdr maintainers <confdr@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL confdr sims)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries' packages from dpkg-shlibdeps (dpkg-dev), as
# debhelper does: librabbitmq4, libhiredis0.14, libzookeeper-mt2, ...
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_CONFDR_PACKAGE_NAME confdr)
# postinst makes the system user with adduser.
set(CPACK_DEBIAN_CONFDR_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_CONFDR_DESCRIPTION
    "disaster-recovery control plane of a video-conferencing platform
The daemons confdr-css (conference scheduling), confdr-rms (resource
management) and confdr-pms (platform management), confdr-supervise, and
the operators' tool confdrctl, with example configurations in /etc/confdr
and the MariaDB schema in /usr/share/confdr/sql.")
# /etc/confdr/*.conf are conffiles: an admin's edits survive an upgrade.
set(_conffiles "")
foreach(c css rms pms)
  string(APPEND _conffiles "${CONFDR_CONF_DIR}/${c}.conf\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/deb/conffiles "${_conffiles}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/postinst ${CMAKE_BINARY_DIR}/deb/postinst COPYONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/postrm ${CMAKE_BINARY_DIR}/deb/postrm COPYONLY)
set(CPACK_DEBIAN_CONFDR_PACKAGE_CONTROL_EXTRA
    "${CMAKE_BINARY_DIR}/deb/conffiles;${CMAKE_BINARY_DIR}/deb/postinst;${CMAKE_BINARY_DIR}/deb/postrm")

set(CPACK_DEBIAN_SIMS_PACKAGE_NAME confdr-sims)
set(CPACK_DEBIAN_SIMS_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_SIMS_DESCRIPTION
    "confdr's simulators and MCU conformance suite
mcusim (MCUs and recorders), cmsim (the conference manager and a load
generator) and confdr-conform (checks an MCU against confdr's protocol):
for tests, drills and benchmarks, not for a production platform.")
include(CPack)
