//! Every notification text the relay shows, in English, Korean, German, Italian and Russian
//! (`options.language`). The one place where notification wording lives.

use crate::config::Language;
use crate::notify::{LinkFailure, LossCause, Notice};
use crate::spool::DropReason;

use Language::{De, En, It, Ko, Ru};

/// The text of `n` in `lang`.
pub fn notice(n: &Notice, lang: Language) -> String {
    match n {
        Notice::RelayStarted { version } => match lang {
            En => format!("CTI relay {version} started"),
            Ko => format!("CTI 릴레이 {version} 시작됨"),
            De => format!("CTI-Relay {version} gestartet"),
            It => format!("Relay CTI {version} avviato"),
            Ru => format!("CTI-ретранслятор {version} запущен"),
        },
        Notice::RelayStopping => match lang {
            En => "CTI relay stopping: closing every session".into(),
            Ko => "CTI 릴레이 종료 중: 모든 세션을 닫습니다".into(),
            De => "CTI-Relay wird beendet: alle Sitzungen werden geschlossen".into(),
            It => "Arresto del relay CTI: chiusura di tutte le sessioni".into(),
            Ru => "CTI-ретранслятор останавливается: все сеансы закрываются".into(),
        },
        Notice::Connecting {
            switch,
            address,
            port,
        } => match lang {
            En => format!("Connecting to switch {switch} [{address}, {port}]"),
            Ko => format!("교환기 {switch}에 연결하는 중 [{address}, {port}]"),
            De => format!("Verbindung zu Anlage {switch} wird aufgebaut [{address}, {port}]"),
            It => format!("Connessione al centralino {switch} in corso [{address}, {port}]"),
            Ru => format!("Подключение к АТС {switch} [{address}, {port}]"),
        },
        Notice::SwitchConnected {
            switch,
            address,
            port,
        } => match lang {
            En => format!("Switch connection success [switch {switch}, {address}, {port}]"),
            Ko => format!("교환기 연결 성공 [교환기 {switch}, {address}, {port}]"),
            De => format!("Verbindung zur Anlage erfolgreich [Anlage {switch}, {address}, {port}]"),
            It => format!("Connessione al centralino riuscita [centralino {switch}, {address}, {port}]"),
            Ru => format!("Подключение к АТС выполнено [АТС {switch}, {address}, {port}]"),
        },
        Notice::Downloading { .. } => match lang {
            En => "Downloading the switch configuration information".into(),
            Ko => "교환기 구성 정보를 다운로드하는 중".into(),
            De => "Konfigurationsdaten der Anlage werden geladen".into(),
            It => "Download delle informazioni di configurazione del centralino".into(),
            Ru => "Загрузка сведений о конфигурации АТС".into(),
        },
        Notice::AllServicesRunning => match lang {
            En => "All services are running".into(),
            Ko => "모든 서비스가 실행 중입니다".into(),
            De => "Alle Dienste laufen".into(),
            It => "Tutti i servizi sono in esecuzione".into(),
            Ru => "Все службы работают".into(),
        },
        Notice::LinkAttemptFailed { switch, failure: f } => {
            let f = failure(f, lang);
            match lang {
                En => format!("Switch {switch} link attempt failed: {f}"),
                Ko => format!("교환기 {switch} 연결 시도 실패: {f}"),
                De => format!("Verbindungsversuch zu Anlage {switch} fehlgeschlagen: {f}"),
                It => format!("Tentativo di collegamento al centralino {switch} non riuscito: {f}"),
                Ru => format!("Попытка подключения к АТС {switch} не удалась: {f}"),
            }
        }
        Notice::SwitchDisconnected { switch, cause: c } => {
            let c = cause(c, lang);
            match lang {
                En => format!("Switch {switch} disconnected ({c})"),
                Ko => format!("교환기 {switch} 연결 끊김 ({c})"),
                De => format!("Anlage {switch} getrennt ({c})"),
                It => format!("Centralino {switch} disconnesso ({c})"),
                Ru => format!("АТС {switch} отключена ({c})"),
            }
        }
        Notice::SessionTooSlow { peer, product } => match lang {
            En => format!("{product} session {peer} closed: it did not read its messages fast enough"),
            Ko => format!("{product} 세션 {peer} 종료: 메시지를 충분히 빨리 읽지 못했습니다"),
            De => format!("{product}-Sitzung {peer} geschlossen: sie hat ihre Nachrichten nicht schnell genug gelesen"),
            It => format!("Sessione {product} {peer} chiusa: non leggeva i messaggi abbastanza velocemente"),
            Ru => format!("Сеанс {product} {peer} закрыт: он читал сообщения недостаточно быстро"),
        },
        Notice::ListenFailed { what, port, error } => match lang {
            En => format!("Cannot listen on the {what} port {port}: {error}"),
            Ko => format!("{what} 포트 {port}에서 수신할 수 없습니다: {error}"),
            De => format!("Der {what}-Port {port} kann nicht geöffnet werden: {error}"),
            It => format!("Impossibile restare in ascolto sulla porta {what} {port}: {error}"),
            Ru => format!("Невозможно открыть порт {what} {port}: {error}"),
        },
        Notice::LicenceApplied { serial, grants } => match lang {
            En => format!("Licence {serial} is in force: {grants}"),
            Ko => format!("라이선스 {serial} 적용됨: {grants}"),
            De => format!("Lizenz {serial} ist gültig: {grants}"),
            It => format!("La licenza {serial} è in vigore: {grants}"),
            Ru => format!("Лицензия {serial} действует: {grants}"),
        },
        Notice::LicenceWaiting { serial, mac } => match lang {
            En => format!("Licence {serial} is bound to switch MAC {mac}, which is not connected: the licence in force stays until that switch connects"),
            Ko => format!("라이선스 {serial}은(는) 연결되지 않은 교환기 MAC {mac}에 묶여 있습니다: 그 교환기가 연결될 때까지 현재 라이선스가 유지됩니다"),
            De => format!("Lizenz {serial} ist an die Anlagen-MAC {mac} gebunden, die nicht verbunden ist: die geltende Lizenz bleibt, bis diese Anlage verbunden ist"),
            It => format!("La licenza {serial} è legata al MAC del centralino {mac}, che non è connesso: la licenza in vigore resta finché quel centralino non si connette"),
            Ru => format!("Лицензия {serial} привязана к MAC станции {mac}, которая не подключена: действующая лицензия сохраняется, пока эта станция не подключится"),
        },
        Notice::LicenceRefused { reason } => match lang {
            En => format!("Licence key refused: {reason}; the previous licence state stays in force"),
            Ko => format!("라이선스 키 거부됨: {reason}; 이전 라이선스 상태가 유지됩니다"),
            De => format!("Lizenzschlüssel abgelehnt: {reason}; der bisherige Lizenzstand bleibt bestehen"),
            It => format!("Chiave di licenza rifiutata: {reason}; resta in vigore la licenza precedente"),
            Ru => format!("Лицензионный ключ отклонён: {reason}; прежнее состояние лицензии сохраняется"),
        },
        Notice::LicenceRemoved => match lang {
            En => "The registered licence was removed; the trial terms apply".into(),
            Ko => "등록된 라이선스가 제거되었습니다. 평가판 조건이 적용됩니다".into(),
            De => "Die registrierte Lizenz wurde entfernt; es gelten die Testbedingungen".into(),
            It => "La licenza registrata è stata rimossa; si applicano le condizioni di prova".into(),
            Ru => "Зарегистрированная лицензия удалена; действуют условия пробного периода".into(),
        },
        Notice::RecoveryStarted {
            switch,
            attempts,
            cycle_minutes,
        } => match lang {
            En => format!("Automatic link recovery started [switch {switch}]: up to {attempts} attempt(s), one every {cycle_minutes} minute(s)"),
            Ko => format!("자동 링크 복구 시작 [교환기 {switch}]: 최대 {attempts}회, {cycle_minutes}분마다 시도"),
            De => format!("Automatische Wiederherstellung der Verbindung gestartet [Anlage {switch}]: bis zu {attempts} Versuch(e), alle {cycle_minutes} Minute(n)"),
            It => format!("Ripristino automatico del collegamento avviato [centralino {switch}]: fino a {attempts} tentativi, uno ogni {cycle_minutes} minuto/i"),
            Ru => format!("Запущено автоматическое восстановление связи [АТС {switch}]: до {attempts} попыток, по одной каждые {cycle_minutes} мин."),
        },
        Notice::RecoveryWaiting { switch, minutes } => match lang {
            En => format!("Switch {switch} link will be reactivated after {minutes} minute(s)"),
            Ko => format!("교환기 {switch} 링크가 {minutes}분 후에 다시 활성화됩니다"),
            De => format!("Verbindung zu Anlage {switch} wird nach {minutes} Minute(n) reaktiviert"),
            It => format!("Il collegamento del centralino {switch} verrà riattivato tra {minutes} minuto/i"),
            Ru => format!("Связь с АТС {switch} будет восстановлена через {minutes} мин."),
        },
        Notice::RecoveryCompleted { switch } => match lang {
            En => format!("Automatic link recovery completed [switch {switch}]"),
            Ko => format!("자동 링크 복구 완료 [교환기 {switch}]"),
            De => format!("Automatische Wiederherstellung der Verbindung abgeschlossen [Anlage {switch}]"),
            It => format!("Ripristino automatico del collegamento completato [centralino {switch}]"),
            Ru => format!("Автоматическое восстановление связи завершено [АТС {switch}]"),
        },
        Notice::RecoveryExhausted { switch, attempts } => match lang {
            En => format!("Automatic link recovery of switch {switch} gave up after {attempts} attempt(s): reconnect it when the switch is ready"),
            Ko => format!("교환기 {switch}의 자동 링크 복구가 {attempts}회 시도 후 중단되었습니다: 교환기가 준비되면 다시 연결하십시오"),
            De => format!("Automatische Wiederherstellung von Anlage {switch} nach {attempts} Versuch(en) aufgegeben: verbinden Sie sie neu, sobald die Anlage bereit ist"),
            It => format!("Ripristino automatico del centralino {switch} interrotto dopo {attempts} tentativi: ricollegarlo quando il centralino è pronto"),
            Ru => format!("Автоматическое восстановление связи с АТС {switch} прекращено после {attempts} попыток: подключите её, когда АТС будет готова"),
        },
        Notice::ConfigReloaded { added_switches } => {
            let added: Vec<String> = added_switches.iter().map(u8::to_string).collect();
            let added = added.join(", ");
            match (lang, added_switches.is_empty()) {
                (En, true) => "Configuration reloaded".into(),
                (En, false) => format!("Configuration reloaded; switch(es) {added} added"),
                (Ko, true) => "구성을 다시 읽었습니다".into(),
                (Ko, false) => format!("구성을 다시 읽었습니다. 교환기 {added} 추가됨"),
                (De, true) => "Konfiguration neu geladen".into(),
                (De, false) => format!("Konfiguration neu geladen; Anlage(n) {added} hinzugefügt"),
                (It, true) => "Configurazione ricaricata".into(),
                (It, false) => format!("Configurazione ricaricata; centralino/i {added} aggiunto/i"),
                (Ru, true) => "Конфигурация перечитана".into(),
                (Ru, false) => format!("Конфигурация перечитана; добавлены АТС {added}"),
            }
        }
        Notice::ConfigReloadRefused { reason } => match lang {
            En => format!("Configuration reload refused, the running configuration stays: {reason}"),
            Ko => format!("구성 다시 읽기가 거부되어 현재 구성이 유지됩니다: {reason}"),
            De => format!("Neuladen der Konfiguration abgelehnt, die laufende Konfiguration bleibt: {reason}"),
            It => format!("Ricaricamento della configurazione rifiutato, resta quella in uso: {reason}"),
            Ru => format!("Перечитывание конфигурации отклонено, действующая конфигурация сохраняется: {reason}"),
        },
        Notice::AttemptAborted { switch } => match lang {
            En => format!("Link attempt to switch {switch} aborted by the operator"),
            Ko => format!("운영자가 교환기 {switch} 연결 시도를 중단했습니다"),
            De => format!("Verbindungsversuch zu Anlage {switch} vom Bediener abgebrochen"),
            It => format!("Tentativo di collegamento al centralino {switch} annullato dall'operatore"),
            Ru => format!("Попытка подключения к АТС {switch} прервана оператором"),
        },
        Notice::SpoolDropped { count, reason } => {
            let limit = match reason {
                DropReason::Size => "export.spool.max_mb",
                DropReason::Age => "export.spool.max_days",
            };
            match lang {
                En => format!("{count} call record(s) never reached a collector and were removed from the export spool ({limit}); they remain in the call-record store"),
                Ko => format!("수집기에 전달되지 않은 통화 기록 {count}건이 내보내기 스풀에서 삭제되었습니다 ({limit}). 통화 기록 저장소에는 남아 있습니다"),
                De => format!("{count} Gesprächsdatensatz/-sätze haben nie einen Sammler erreicht und wurden aus dem Export-Spool entfernt ({limit}); sie bleiben im Gesprächsdatenspeicher"),
                It => format!("{count} record di chiamata non hanno mai raggiunto un collettore e sono stati rimossi dallo spool di esportazione ({limit}); restano nell'archivio dei record"),
                Ru => format!("{count} запис(ей) о вызовах так и не дошли до сборщика и удалены из очереди экспорта ({limit}); они остаются в хранилище записей"),
            }
        }
        Notice::SpoolWriteFailed { error } => match lang {
            En => format!("The export spool cannot write its journal ({error}): records are kept in memory only until it can; check the disk of state_dir"),
            Ko => format!("내보내기 스풀이 저널을 쓸 수 없습니다 ({error}): 쓸 수 있을 때까지 기록은 메모리에만 보관됩니다. state_dir 디스크를 확인하십시오"),
            De => format!("Der Export-Spool kann sein Journal nicht schreiben ({error}): Datensätze bleiben nur im Speicher, bis es wieder geht; prüfen Sie den Datenträger von state_dir"),
            It => format!("Lo spool di esportazione non può scrivere il suo journal ({error}): i record restano solo in memoria finché non potrà; controllare il disco di state_dir"),
            Ru => format!("Очередь экспорта не может записать журнал ({error}): записи хранятся только в памяти, пока запись не станет возможной; проверьте диск state_dir"),
        },
        Notice::AtSite {
            site,
            remote,
            notice: inner,
        } => {
            let inner = notice(inner, lang);
            match lang {
                En => format!("{inner} [site {site}, its switch {remote}]"),
                Ko => format!("{inner} [사이트 {site}, 해당 사이트의 교환기 {remote}]"),
                De => format!("{inner} [Standort {site}, dortige Anlage {remote}]"),
                It => format!("{inner} [sede {site}, suo centralino {remote}]"),
                Ru => format!("{inner} [площадка {site}, её АТС {remote}]"),
            }
        }
        Notice::PeerConfigApplied { node } => match lang {
            En => format!("Switches and users changed on relay {node} of this site: applied here too"),
            Ko => format!("이 사이트의 릴레이 {node}에서 교환기와 사용자가 변경되었습니다: 여기에도 적용됨"),
            De => format!("Anlagen und Benutzer auf Relay {node} dieses Standorts geändert: auch hier übernommen"),
            It => format!("Centralini e utenti modificati sul relay {node} di questa sede: applicati anche qui"),
            Ru => format!("АТС и пользователи изменены на ретрансляторе {node} этой площадки: применено и здесь"),
        },
        Notice::PeerConfigRefused { node, reason } => match lang {
            En => format!("The change of switches and users made on relay {node} of this site is refused here, this relay keeps its configuration: {reason}"),
            Ko => format!("이 사이트의 릴레이 {node}에서 한 교환기·사용자 변경이 여기서는 거부되어 현재 구성이 유지됩니다: {reason}"),
            De => format!("Die Änderung von Anlagen und Benutzern auf Relay {node} dieses Standorts wird hier abgelehnt, dieses Relay behält seine Konfiguration: {reason}"),
            It => format!("La modifica di centralini e utenti fatta sul relay {node} di questa sede è rifiutata qui, questo relay mantiene la sua configurazione: {reason}"),
            Ru => format!("Изменение АТС и пользователей на ретрансляторе {node} этой площадки здесь отклонено, конфигурация этого ретранслятора сохраняется: {reason}"),
        },
        Notice::PeerConfigNotPassed { error } => match lang {
            En => format!("The change of switches and users made here has not reached the other relay of this site yet ({error}); retrying every second"),
            Ko => format!("여기서 한 교환기·사용자 변경이 아직 이 사이트의 다른 릴레이에 전달되지 않았습니다 ({error}). 1초마다 다시 시도합니다"),
            De => format!("Die hier vorgenommene Änderung von Anlagen und Benutzern hat das andere Relay dieses Standorts noch nicht erreicht ({error}); neuer Versuch jede Sekunde"),
            It => format!("La modifica di centralini e utenti fatta qui non ha ancora raggiunto l'altro relay di questa sede ({error}); nuovo tentativo ogni secondo"),
            Ru => format!("Изменение АТС и пользователей, сделанное здесь, ещё не дошло до другого ретранслятора этой площадки ({error}); повтор каждую секунду"),
        },
    }
}

/// Why a link attempt failed, in `lang`.
pub fn failure(f: &LinkFailure, lang: Language) -> String {
    match f {
        LinkFailure::Dial(e) => match lang {
            En => format!("cannot connect: {e}"),
            Ko => format!("연결할 수 없습니다: {e}"),
            De => format!("keine Verbindung möglich: {e}"),
            It => format!("impossibile connettersi: {e}"),
            Ru => format!("невозможно подключиться: {e}"),
        },
        LinkFailure::Refused => match lang {
            En => "the switch refused the CTI link".into(),
            Ko => "교환기가 CTI 링크를 거부했습니다".into(),
            De => "die Anlage hat die CTI-Verbindung abgelehnt".into(),
            It => "il centralino ha rifiutato il collegamento CTI".into(),
            Ru => "АТС отклонила CTI-соединение".into(),
        },
        LinkFailure::AddressMismatch => match lang {
            En => "the switch refused the CTI link: its CTI server address (MMC 830) does not match this host".into(),
            Ko => "교환기가 CTI 링크를 거부했습니다: 교환기의 CTI 서버 주소(MMC 830)가 이 호스트와 일치하지 않습니다".into(),
            De => "die Anlage hat die CTI-Verbindung abgelehnt: ihre CTI-Serveradresse (MMC 830) stimmt nicht mit diesem Rechner überein".into(),
            It => "il centralino ha rifiutato il collegamento CTI: il suo indirizzo del server CTI (MMC 830) non corrisponde a questo host".into(),
            Ru => "АТС отклонила CTI-соединение: её адрес CTI-сервера (MMC 830) не совпадает с этим узлом".into(),
        },
        LinkFailure::WrongPassword => match lang {
            En => "the switch rejected the EasySet password (MMC 841): correct easyset_password".into(),
            Ko => "교환기가 EasySet 비밀번호(MMC 841)를 거부했습니다: easyset_password를 수정하십시오".into(),
            De => "die Anlage hat das EasySet-Passwort (MMC 841) abgelehnt: easyset_password korrigieren".into(),
            It => "il centralino ha rifiutato la password EasySet (MMC 841): correggere easyset_password".into(),
            Ru => "АТС отклонила пароль EasySet (MMC 841): исправьте easyset_password".into(),
        },
        LinkFailure::AttemptTimeout => match lang {
            En => "the switch did not complete the link within 60 s".into(),
            Ko => "교환기가 60초 안에 링크를 완료하지 않았습니다".into(),
            De => "die Anlage hat die Verbindung nicht innerhalb von 60 s hergestellt".into(),
            It => "il centralino non ha completato il collegamento entro 60 s".into(),
            Ru => "АТС не установила соединение за 60 с".into(),
        },
        LinkFailure::Broken(e) => match lang {
            En => format!("the link broke during set-up: {e}"),
            Ko => format!("설정 중 링크가 끊어졌습니다: {e}"),
            De => format!("die Verbindung brach beim Aufbau ab: {e}"),
            It => format!("il collegamento si è interrotto durante l'impostazione: {e}"),
            Ru => format!("соединение оборвалось при установке: {e}"),
        },
        LinkFailure::Protocol(e) => protocol_error(e, lang),
    }
}

/// Why an established link was lost, in `lang`.
pub fn cause(c: &LossCause, lang: Language) -> String {
    match c {
        LossCause::Closed => match lang {
            En => "the switch closed the link".into(),
            Ko => "교환기가 링크를 닫았습니다".into(),
            De => "die Anlage hat die Verbindung geschlossen".into(),
            It => "il centralino ha chiuso il collegamento".into(),
            Ru => "АТС закрыла соединение".into(),
        },
        LossCause::Error(e) => match lang {
            En => format!("link error: {e}"),
            Ko => format!("링크 오류: {e}"),
            De => format!("Verbindungsfehler: {e}"),
            It => format!("errore di collegamento: {e}"),
            Ru => format!("ошибка соединения: {e}"),
        },
        LossCause::Protocol(e) => protocol_error(e, lang),
        LossCause::Silent => match lang {
            En => "no frame for 30 s".into(),
            Ko => "30초 동안 프레임 없음".into(),
            De => "30 s lang kein Frame".into(),
            It => "nessun frame per 30 s".into(),
            Ru => "нет кадров в течение 30 с".into(),
        },
        LossCause::Stopping => match lang {
            En => "the relay is stopping".into(),
            Ko => "릴레이가 종료 중입니다".into(),
            De => "das Relay wird beendet".into(),
            It => "il relay si sta arrestando".into(),
            Ru => "ретранслятор останавливается".into(),
        },
        LossCause::SiteDown => match lang {
            En => "its site's relay lost the link".into(),
            Ko => "해당 사이트의 릴레이가 링크를 잃었습니다".into(),
            De => "das Relay seines Standorts hat die Verbindung verloren".into(),
            It => "il relay della sua sede ha perso il collegamento".into(),
            Ru => "ретранслятор его площадки потерял соединение".into(),
        },
        LossCause::SiteSilent => match lang {
            En => "nothing from its site for 3.5 s".into(),
            Ko => "3.5초 동안 해당 사이트에서 아무것도 오지 않음".into(),
            De => "3,5 s lang nichts von seinem Standort".into(),
            It => "nulla dalla sua sede per 3,5 s".into(),
            Ru => "нет ничего от его площадки в течение 3,5 с".into(),
        },
        LossCause::Operator => match lang {
            En => "disconnected by the operator".into(),
            Ko => "운영자가 연결을 끊었습니다".into(),
            De => "vom Bediener getrennt".into(),
            It => "disconnesso dall'operatore".into(),
            Ru => "отключено оператором".into(),
        },
    }
}

fn protocol_error(e: &str, lang: Language) -> String {
    match lang {
        En => format!("protocol error: {e}"),
        Ko => format!("프로토콜 오류: {e}"),
        De => format!("Protokollfehler: {e}"),
        It => format!("errore di protocollo: {e}"),
        Ru => format!("ошибка протокола: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_its_own_text_for_each_notice() {
        let samples = [
            Notice::RecoveryWaiting {
                switch: 2,
                minutes: 1,
            },
            Notice::RecoveryCompleted { switch: 2 },
            Notice::SwitchDisconnected {
                switch: 2,
                cause: LossCause::Silent,
            },
            Notice::LinkAttemptFailed {
                switch: 2,
                failure: LinkFailure::AddressMismatch,
            },
            Notice::AtSite {
                site: "hq".into(),
                remote: 1,
                notice: Box::new(Notice::RecoveryCompleted { switch: 2 }),
            },
            Notice::PeerConfigApplied { node: "b2".into() },
            Notice::PeerConfigRefused {
                node: "b2".into(),
                reason: "switches[0]".into(),
            },
            Notice::PeerConfigNotPassed {
                error: "timed out after 2 s".into(),
            },
        ];
        for n in &samples {
            let texts: Vec<String> = [En, Ko, De, It, Ru].iter().map(|l| notice(n, *l)).collect();
            for (i, a) in texts.iter().enumerate() {
                assert!(a.contains('2'), "{a}");
                for b in &texts[i + 1..] {
                    assert_ne!(a, b);
                }
            }
        }
        assert_eq!(
            notice(
                &Notice::RecoveryWaiting {
                    switch: 3,
                    minutes: 2
                },
                De
            ),
            "Verbindung zu Anlage 3 wird nach 2 Minute(n) reaktiviert"
        );
    }
}
