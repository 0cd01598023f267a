//! Keys to actions: a pure function of the input mode and the key, so the bindings are tested
//! without a terminal. The help screen (`view::help`) lists the same bindings.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, InputMode};

pub fn action(mode: InputMode, key: KeyEvent) -> Action {
    // Repeats count as presses (holding j scrolls); releases (kitty protocol) do nothing.
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    // Raw mode turns Ctrl-C into a key, not a SIGINT: it must quit from every mode.
    if ctrl && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    match mode {
        InputMode::Filter => match key.code {
            KeyCode::Enter => Action::FilterAccept,
            KeyCode::Esc => Action::FilterCancel,
            KeyCode::Backspace => Action::FilterBackspace,
            KeyCode::Char(c) if !ctrl => Action::FilterChar(c),
            _ => Action::None,
        },
        // Esc and ? close the help rather than quit from under it.
        InputMode::Help => match key.code {
            KeyCode::Esc | KeyCode::Char('?') => Action::ToggleHelp,
            KeyCode::Char('q') => Action::Quit,
            _ => Action::None,
        },
        InputMode::Normal => match key.code {
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            KeyCode::PageUp => Action::PageUp,
            KeyCode::PageDown => Action::PageDown,
            KeyCode::Home | KeyCode::Char('g') => Action::First,
            KeyCode::End | KeyCode::Char('G') => Action::Last,
            KeyCode::Enter => Action::ToggleDetail,
            KeyCode::Char('s') => Action::CycleSort,
            KeyCode::Char('/') => Action::StartFilter,
            KeyCode::Char(' ') => Action::TogglePause,
            KeyCode::Char('t') => Action::ToggleTotals,
            KeyCode::Char('c') => Action::ToggleContainers,
            KeyCode::Char('?') => Action::ToggleHelp,
            _ => Action::None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn normal_mode_bindings() {
        let n = |code| action(InputMode::Normal, press(code));
        assert_eq!(n(KeyCode::Char('j')), Action::Down);
        assert_eq!(n(KeyCode::Down), Action::Down);
        assert_eq!(n(KeyCode::Char('k')), Action::Up);
        assert_eq!(n(KeyCode::Up), Action::Up);
        assert_eq!(n(KeyCode::Enter), Action::ToggleDetail);
        assert_eq!(n(KeyCode::Char('s')), Action::CycleSort);
        assert_eq!(n(KeyCode::Char('/')), Action::StartFilter);
        assert_eq!(n(KeyCode::Char(' ')), Action::TogglePause);
        assert_eq!(n(KeyCode::Char('t')), Action::ToggleTotals);
        assert_eq!(n(KeyCode::Char('c')), Action::ToggleContainers);
        assert_eq!(n(KeyCode::Char('?')), Action::ToggleHelp);
        assert_eq!(n(KeyCode::Char('q')), Action::Quit);
        assert_eq!(n(KeyCode::Esc), Action::Quit);
        assert_eq!(n(KeyCode::Char('x')), Action::None);
    }

    #[test]
    fn ctrl_c_quits_from_every_mode() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [InputMode::Normal, InputMode::Filter, InputMode::Help] {
            assert_eq!(action(mode, ctrl_c), Action::Quit, "{mode:?}");
        }
    }

    #[test]
    fn filter_mode_takes_text() {
        let f = |code| action(InputMode::Filter, press(code));
        assert_eq!(f(KeyCode::Char('q')), Action::FilterChar('q'));
        assert_eq!(f(KeyCode::Char('/')), Action::FilterChar('/'));
        assert_eq!(f(KeyCode::Backspace), Action::FilterBackspace);
        assert_eq!(f(KeyCode::Enter), Action::FilterAccept);
        assert_eq!(f(KeyCode::Esc), Action::FilterCancel);
    }

    #[test]
    fn help_mode_closes_on_esc_and_releases_do_nothing() {
        assert_eq!(
            action(InputMode::Help, press(KeyCode::Esc)),
            Action::ToggleHelp
        );
        assert_eq!(
            action(InputMode::Help, press(KeyCode::Char('j'))),
            Action::None
        );
        let mut release = press(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(InputMode::Normal, release), Action::None);
    }
}
