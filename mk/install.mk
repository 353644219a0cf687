# make install / make uninstall, with DESTDIR and PREFIX.
#   plugin      $(PLUGINDIR)/stap.so               (collectd's plugin directory)
#   modules     /lib/modules/KVER/systemtap/       (staprun's own place; members
#               of stapusr may load modules from there) for every KVER built
#               under build/modules/
#   snippets    $(SYSCONFDIR)/collectd/collectd.conf.d/stap*.conf; an existing
#               copy that differs (edited by the operator) is kept and the new
#               one installed beside it as FILE.dist
#   types.db    $(DATADIR)/collectd/stap.types.db
#   man page    $(MANDIR)/man5/collectd-stap.5.gz
PREFIX ?= /usr
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
PLUGINDIR ?= $(PREFIX)/lib/collectd
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
MODULESDIR ?= /lib/modules
SNIPPETS := stap.conf stap-thresholds.conf

.PHONY: install uninstall man check-install

man: $(BUILD)/collectd-stap.5
$(BUILD)/collectd-stap.5: doc/collectd-stap.pod
	@mkdir -p $(BUILD)
	pod2man --section=5 --center="collectd-stap" --release="collectd-stap" \
	  --name=COLLECTD-STAP --errors=die $< $@

install: $(BUILD)/stap.so $(BUILD)/collectd-stap.5
	install -d $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(DATADIR)/collectd \
	  $(DESTDIR)$(SYSCONFDIR)/collectd/collectd.conf.d $(DESTDIR)$(MANDIR)/man5
	install -m 0644 $(BUILD)/stap.so $(DESTDIR)$(PLUGINDIR)/stap.so
	install -m 0644 collectd.conf.d/stap.types.db $(DESTDIR)$(DATADIR)/collectd/stap.types.db
	gzip -9n < $(BUILD)/collectd-stap.5 > $(DESTDIR)$(MANDIR)/man5/collectd-stap.5.gz
	@for ko in $(wildcard $(BUILD)/modules/*/collectd_stap_*.ko); do \
	  kver=$$(basename $$(dirname $$ko)); \
	  install -d $(DESTDIR)$(MODULESDIR)/$$kver/systemtap && \
	  install -m 0644 $$ko $(DESTDIR)$(MODULESDIR)/$$kver/systemtap/ && \
	  { [ ! -f $${ko%.ko}.params ] || install -m 0644 $${ko%.ko}.params $(DESTDIR)$(MODULESDIR)/$$kver/systemtap/; } && \
	  echo "installed $$ko -> $(DESTDIR)$(MODULESDIR)/$$kver/systemtap/" || exit 1; \
	done
	@set -e; for f in $(SNIPPETS); do \
	  new=$(BUILD)/install-$$f; \
	  sed 's|/usr/share/collectd/stap.types.db|$(DATADIR)/collectd/stap.types.db|' \
	    collectd.conf.d/$$f > $$new; \
	  dst=$(DESTDIR)$(SYSCONFDIR)/collectd/collectd.conf.d/$$f; \
	  if [ -e $$dst ] && ! cmp -s $$new $$dst; then \
	    install -m 0644 $$new $$dst.dist; \
	    echo "kept your edited $$dst; the shipped one is $$dst.dist"; \
	  else \
	    install -m 0644 $$new $$dst; \
	  fi; \
	done
	@echo "installed; restart collectd to load the plugin (systemctl restart collectd)"

uninstall:
	rm -f $(DESTDIR)$(PLUGINDIR)/stap.so $(DESTDIR)$(DATADIR)/collectd/stap.types.db \
	  $(DESTDIR)$(MANDIR)/man5/collectd-stap.5.gz
	rm -f $(DESTDIR)$(MODULESDIR)/*/systemtap/collectd_stap_*.ko \
	  $(DESTDIR)$(MODULESDIR)/*/systemtap/collectd_stap_*.params
	@set -e; for f in $(SNIPPETS); do \
	  dst=$(DESTDIR)$(SYSCONFDIR)/collectd/collectd.conf.d/$$f; \
	  new=$(BUILD)/install-$$f; \
	  sed 's|/usr/share/collectd/stap.types.db|$(DATADIR)/collectd/stap.types.db|' \
	    collectd.conf.d/$$f > $$new; \
	  rm -f $$dst.dist; \
	  if [ -e $$dst ] && ! cmp -s $$new $$dst; then \
	    echo "kept your edited $$dst"; \
	  else \
	    rm -f $$dst; \
	  fi; \
	done

check-install: $(BUILD)/stap.so | deps-collectd
	@echo "==> install test (DESTDIR)"
	bash tests/install/run.sh $(BUILD)/install-test
	@echo "==> module builds for a list of kernels and signing per kernel (tests/modules/run.sh)"
	bash tests/modules/run.sh $(BUILD)/modules-test
