#!/usr/bin/env bash
# Makes sure the servers the test suite talks to run on loopback, installing them from
# Debian's packages on a fresh machine:
#   PostgreSQL 127.0.0.1:5432 (user postgres, trust), MariaDB 127.0.0.1:3306 (root, no
#   password), Redis 127.0.0.1:6379.
# Where they already run (this machine kind starts them before the session) it only checks.
# Also installs (never starts) the programs the drill stack runs privately: Prometheus and
# Alertmanager.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
    for _ in $(seq 1 120); do
        listening "$1" && return 0
        sleep 0.5
    done
    echo "services: $2 is not listening on 127.0.0.1:$1" >&2
    return 1
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! listening 5432; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "services: installing PostgreSQL from Debian" >&2
        apt_install postgresql postgresql-contrib
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        # A test machine: loopback connections are trusted, as on the machines CI uses.
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' \
            "/etc/postgresql/$version/main/pg_hba.conf"
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for 5432 PostgreSQL
fi

if ! listening 3306; then
    fresh=""
    if [ ! -x /usr/sbin/mariadbd ]; then
        echo "services: installing MariaDB from Debian" >&2
        apt_install mariadb-server
        fresh=1
    fi
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for 3306 MariaDB
    if [ -n "$fresh" ]; then
        mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password
            USING PASSWORD(''); CREATE USER IF NOT EXISTS root@'127.0.0.1';
            GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
    fi
fi

if ! listening 6379; then
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "services: installing Redis from Debian" >&2
        apt_install redis-server
    fi
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 6379 Redis
fi

# The drill stack's monitoring: real Prometheus and Alertmanager (started per stack by the
# harness itself, on private ports; here they are only installed, never started).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
    echo "services: installing Prometheus and Alertmanager from Debian" >&2
    apt_install --no-install-recommends prometheus prometheus-alertmanager
fi
